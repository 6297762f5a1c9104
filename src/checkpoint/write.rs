//! Writing: lazy views that read each tensor from the GPU when the writer
//! reaches it (the params in their dtype, the f32 masters; the states'
//! are `state_entries` in mod.rs), and the atomic write (temporary file,
//! fsync, rename).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ck_err, fnv1a};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::params::ParamSet;
use crate::precision::ParamUpdate;

/// A tensor of the file: its name, dtype, shape, and how to read its bytes
/// (little-endian, as safetensors stores them) from the GPU.
pub(super) struct Entry<'a> {
    pub(super) name: String,
    pub(super) dtype: safetensors::Dtype,
    pub(super) shape: Vec<usize>,
    pub(super) read: Box<dyn Fn() -> Result<Vec<u8>> + 'a>,
}

impl<'a> Entry<'a> {
    /// An F32 tensor read as f32 values.
    pub(super) fn f32(
        name: String,
        shape: Vec<usize>,
        read: impl Fn() -> Result<Vec<f32>> + 'a,
    ) -> Entry<'a> {
        Entry {
            name,
            dtype: safetensors::Dtype::F32,
            shape,
            read: Box::new(move || read().map(|v| bytemuck::cast_slice(&v).to_vec())),
        }
    }
}

/// Every param tensor in the params' own dtype (F32, BF16 or F16), named
/// `prefix` + its name.
pub(super) fn param_entries<'a>(
    gpu: &'a Gpu,
    params: &'a ParamSet,
    prefix: &str,
) -> Vec<Entry<'a>> {
    params
        .layout()
        .tensors()
        .iter()
        .map(|t| {
            let name = t.name.clone();
            Entry {
                name: format!("{prefix}{}", t.name),
                dtype: params.param_dtype().safetensors(),
                shape: t.shape.clone(),
                read: Box::new(move || params.read_raw(gpu, &name)),
            }
        })
        .collect()
}

/// The f32 master weights (`master.<tensor>`) of the tensors that keep them,
/// each read from its owner (`super::Owner`).
pub(super) fn master_entries<'a>(
    params: &ParamSet,
    owners: &[super::Owner<'a>],
) -> Result<Vec<Entry<'a>>> {
    let mut out = Vec::new();
    for (t, &(gpu, _, opt)) in params.layout().tensors().iter().zip(owners) {
        if opt.param_update(&t.name)? == ParamUpdate::MasterWeights && opt.owns(&t.name)? {
            let name = t.name.clone();
            out.push(Entry::f32(
                format!("master.{}", t.name),
                t.shape.clone(),
                move || opt.read_master(gpu, &name),
            ));
        }
    }
    Ok(out)
}

/// Bytes per element of the dtypes checkpoints use.
pub(super) fn dtype_bytes(d: safetensors::Dtype) -> usize {
    match d {
        safetensors::Dtype::BF16 | safetensors::Dtype::F16 => 2,
        safetensors::Dtype::U8 => 1,
        _ => 4,
    }
}

/// A safetensors view that reads its tensor from the GPU when the writer
/// asks for it; a failed read is kept and reported after the write.
struct Lazy<'a, 'e> {
    entry: &'e Entry<'a>,
    failed: &'e std::cell::RefCell<Option<Error>>,
}

impl safetensors::View for Lazy<'_, '_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.entry.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.entry.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        match (self.entry.read)() {
            Ok(v) => v.into(),
            Err(e) => {
                self.failed.borrow_mut().get_or_insert(e);
                vec![0u8; self.data_len()].into()
            }
        }
    }
    fn data_len(&self) -> usize {
        self.entry.shape.iter().product::<usize>() * dtype_bytes(self.entry.dtype)
    }
}

/// A temporary file name next to `file_name`, unique to this call: the
/// process id, a process-wide counter and the clock's nanoseconds, so two
/// saves to one path (from two threads, or two processes sharing a folder)
/// never write into the same temporary file.
fn temp_name(file_name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(".{file_name}.tmp-{}-{n}-{nanos}", std::process::id())
}

/// Writes `entries` with `meta` atomically to `path`: into a temporary file
/// of its own in the same folder, fsynced, then renamed over `path`. Saves
/// racing for one path each rename a whole file: the last rename wins.
pub(super) fn write_atomic(
    path: &Path,
    entries: &[Entry<'_>],
    meta: HashMap<String, String>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| ck_err(path, "the path names no file"))?
        .to_string_lossy()
        .to_string();
    let tmp = dir.join(temp_name(&file_name));
    let failed = std::cell::RefCell::new(None);
    let result = (|| {
        let views: Vec<(String, Lazy<'_, '_>)> = entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    Lazy {
                        entry: e,
                        failed: &failed,
                    },
                )
            })
            .collect();
        safetensors::serialize_to_file(views, Some(meta), &tmp)
            .map_err(|e| ck_err(path, format!("writing {}: {e}", tmp.display())))?;
        if let Some(e) = failed.borrow_mut().take() {
            return Err(e);
        }
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| ck_err(path, format!("fsync of {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| ck_err(path, format!("rename from {}: {e}", tmp.display())))?;
        // Persist the rename itself.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(super) fn checksums(entries: &[Entry<'_>]) -> Result<BTreeMap<String, String>> {
    entries
        .iter()
        .map(|e| Ok((e.name.clone(), format!("{:016x}", fnv1a(&(e.read)()?)))))
        .collect()
}

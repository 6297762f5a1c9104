//! Reading: the header parsed by hand from a bounded read and checked
//! against what the caller expects before any tensor is used.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{MAX_HEADER, VERSION, ck_err, fnv1a};
use crate::error::Result;

/// A tensor entry of a safetensors header.
#[derive(Deserialize)]
struct HeaderTensor {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// An opened file: its header, validated against what the caller expects.
pub(super) struct Reader {
    path: PathBuf,
    file: File,
    data_start: u64,
    tensors: HashMap<String, HeaderTensor>,
    pub(super) metadata: HashMap<String, String>,
}

impl Reader {
    pub(super) fn open(path: &Path) -> Result<Reader> {
        let mut file = File::open(path).map_err(|e| ck_err(path, format!("cannot open: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| ck_err(path, e.to_string()))?
            .len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|_| {
            ck_err(
                path,
                format!("truncated: {len} bytes, not even a header length"),
            )
        })?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || 8 + n > len {
            return Err(ck_err(
                path,
                format!("corrupt or truncated header: it claims {n} bytes, the file has {len}"),
            ));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .map_err(|e| ck_err(path, format!("reading the header: {e}")))?;
        let mut map: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
            .map_err(|e| ck_err(path, format!("corrupt header (not safetensors JSON): {e}")))?;
        let metadata: HashMap<String, String> = match map.remove("__metadata__") {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| ck_err(path, format!("corrupt __metadata__: {e}")))?,
            None => HashMap::new(),
        };
        let mut tensors = HashMap::new();
        let mut end = 0u64;
        for (name, v) in map {
            let t: HeaderTensor = serde_json::from_value(v)
                .map_err(|e| ck_err(path, format!("corrupt header entry `{name}`: {e}")))?;
            end = end.max(t.data_offsets.1);
            tensors.insert(name, t);
        }
        if 8 + n + end != len {
            return Err(ck_err(
                path,
                format!(
                    "truncated or padded: the header describes {} bytes, the file has {len}",
                    8 + n + end
                ),
            ));
        }
        Ok(Reader {
            path: path.to_path_buf(),
            file,
            data_start: 8 + n,
            tensors,
            metadata,
        })
    }

    /// Checks that the file holds exactly `expected` (name, shape) as F32.
    pub(super) fn check_tensors(&self, expected: &[(String, Vec<usize>)]) -> Result<()> {
        for (name, shape) in expected {
            let t = self
                .tensors
                .get(name)
                .ok_or_else(|| ck_err(&self.path, format!("missing tensor `{name}`")))?;
            if t.dtype != "F32" {
                return Err(ck_err(
                    &self.path,
                    format!("tensor `{name}` has dtype {}, expected F32", t.dtype),
                ));
            }
            if &t.shape != shape {
                return Err(ck_err(
                    &self.path,
                    format!(
                        "tensor `{name}` has shape {:?}, expected {shape:?}",
                        t.shape
                    ),
                ));
            }
            let bytes = shape.iter().product::<usize>() as u64 * 4;
            if t.data_offsets.1 < t.data_offsets.0 || t.data_offsets.1 - t.data_offsets.0 != bytes {
                return Err(ck_err(
                    &self.path,
                    format!(
                        "tensor `{name}` spans bytes {:?}, expected {bytes} bytes",
                        t.data_offsets
                    ),
                ));
            }
        }
        if self.tensors.len() != expected.len() {
            let mut extra: Vec<&String> = self
                .tensors
                .keys()
                .filter(|k| !expected.iter().any(|(n, _)| n == *k))
                .collect();
            extra.sort();
            return Err(ck_err(&self.path, format!("unexpected tensors {extra:?}")));
        }
        Ok(())
    }

    pub(super) fn read(&mut self, name: &str) -> Result<Vec<f32>> {
        let t = &self.tensors[name];
        let mut buf = vec![0u8; (t.data_offsets.1 - t.data_offsets.0) as usize];
        self.file
            .seek(SeekFrom::Start(self.data_start + t.data_offsets.0))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| ck_err(&self.path, format!("reading `{name}`: {e}")))?;
        Ok(bytemuck::pod_collect_to_vec(&buf))
    }

    pub(super) fn verify_checksums(&mut self, sums: &BTreeMap<String, String>) -> Result<()> {
        let names: Vec<String> = self.tensors.keys().cloned().collect();
        for name in names {
            let want = sums
                .get(&name)
                .ok_or_else(|| ck_err(&self.path, format!("no checksum recorded for `{name}`")))?;
            let got = format!("{:016x}", fnv1a(bytemuck::cast_slice(&self.read(&name)?)));
            if &got != want {
                return Err(ck_err(
                    &self.path,
                    format!("checksum mismatch in tensor `{name}`: the data is corrupt"),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn check_format(&self, format: &str) -> Result<()> {
        let found = self
            .metadata
            .get("format")
            .map(String::as_str)
            .unwrap_or("(none)");
        if found != format {
            return Err(ck_err(
                &self.path,
                format!("format is {found:?}, expected {format:?}"),
            ));
        }
        let version = self
            .metadata
            .get("version")
            .map(String::as_str)
            .unwrap_or("(none)");
        if version != VERSION.to_string() {
            return Err(ck_err(
                &self.path,
                format!("version {version} is not supported; this build reads version {VERSION}"),
            ));
        }
        Ok(())
    }
}

//! Reading: the header parsed by hand from a bounded read and checked as
//! Python's safetensors checks it — before any tensor is used.
//!
//! A key that appears twice (tensor or metadata), an unknown field of a
//! tensor entry, a tensor that ends before it begins or past the end of
//! the file, two tensors whose bytes overlap and bytes that belong to no
//! tensor are refused: every byte of the data section belongs to exactly
//! one tensor. Offsets are checked with checked arithmetic, so no value of
//! the file can overflow or panic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::write::dtype_bytes;
use super::{MAX_HEADER, ck_err, fnv1a};
use crate::error::Result;

/// A tensor a load expects: name, dtype, shape, and why that dtype (a
/// clause for the error message, e.g. ", as the live optimizer stores the
/// states of `w` in bf16"; empty for params).
pub(super) type Expected = (String, safetensors::Dtype, Vec<usize>, String);

/// A tensor entry of a safetensors header.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderTensor {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// The header as written: tensor entries in file order and the
/// `__metadata__` strings, each key at most once.
struct Header {
    tensors: Vec<(String, HeaderTensor)>,
    metadata: Vec<(String, String)>,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Header, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of tensor entries and `__metadata__`")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Header, A::Error> {
                let mut seen = HashSet::new();
                let mut header = Header {
                    tensors: Vec::new(),
                    metadata: Vec::new(),
                };
                while let Some(k) = m.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("the key `{k}` appears twice")));
                    }
                    if k == "__metadata__" {
                        header.metadata = m
                            .next_value::<UniqueStrings>()
                            .map_err(|e| de::Error::custom(format!("`__metadata__`: {e}")))?
                            .0;
                    } else {
                        let t = m
                            .next_value::<HeaderTensor>()
                            .map_err(|e| de::Error::custom(format!("entry `{k}`: {e}")))?;
                        header.tensors.push((k, t));
                    }
                }
                Ok(header)
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON object of strings whose keys are all different.
struct UniqueStrings(Vec<(String, String)>);

impl<'de> Deserialize<'de> for UniqueStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<UniqueStrings, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueStrings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<UniqueStrings, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("the key `{k}` appears twice")));
                    }
                    let v = m
                        .next_value::<String>()
                        .map_err(|e| de::Error::custom(format!("key `{k}`: {e}")))?;
                    out.push((k, v));
                }
                Ok(UniqueStrings(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// An opened file: its header, validated against what the caller expects.
pub(super) struct Reader {
    path: PathBuf,
    file: File,
    data_start: u64,
    tensors: HashMap<String, HeaderTensor>,
    metadata: HashMap<String, String>,
}

impl Reader {
    /// Opens `path` and checks the header's structure and that its tensors
    /// cover the data section exactly, end to end.
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
        let Some(data_start) = n.checked_add(8).filter(|&s| n <= MAX_HEADER && s <= len) else {
            return Err(ck_err(
                path,
                format!(
                    "corrupt or truncated header: it claims {n} bytes (at most {MAX_HEADER} \
                     allowed), the file has {len}"
                ),
            ));
        };
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .map_err(|e| ck_err(path, format!("reading the header: {e}")))?;
        let header: Header = serde_json::from_slice(&header)
            .map_err(|e| ck_err(path, format!("corrupt header (not safetensors JSON): {e}")))?;
        check_spans(path, &header.tensors, len - data_start, len)?;
        Ok(Reader {
            path: path.to_path_buf(),
            file,
            data_start,
            tensors: header.tensors.into_iter().collect(),
            metadata: header.metadata.into_iter().collect(),
        })
    }
    /// Checks that the file holds exactly `expected`: (name, dtype, shape,
    /// why that dtype, for the message).
    pub(super) fn check_typed_tensors(&self, expected: &[Expected]) -> Result<()> {
        for (name, dtype, shape, why) in expected {
            let t = self
                .tensors
                .get(name)
                .ok_or_else(|| ck_err(&self.path, format!("missing tensor `{name}`")))?;
            let want = format!("{dtype:?}");
            if t.dtype != want {
                return Err(ck_err(
                    &self.path,
                    format!(
                        "tensor `{name}` has dtype {}, expected {want}{why}",
                        t.dtype
                    ),
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
            // The live shape: its byte count fits (the live buffers hold it).
            let bytes = shape.iter().product::<usize>() as u64 * dtype_bytes(*dtype) as u64;
            let (b, e) = t.data_offsets;
            if e - b != bytes {
                return Err(ck_err(
                    &self.path,
                    format!(
                        "tensor `{name}` spans bytes [{b}, {e}) ({} bytes), but {want} {shape:?} \
                         takes {bytes}",
                        e - b
                    ),
                ));
            }
        }
        if self.tensors.len() != expected.len() {
            let mut extra: Vec<&String> = self
                .tensors
                .keys()
                .filter(|k| !expected.iter().any(|x| x.0 == **k))
                .collect();
            extra.sort();
            return Err(ck_err(&self.path, format!("unexpected tensors {extra:?}")));
        }
        Ok(())
    }

    /// The bytes of tensor `name` (checked by `check_tensors`).
    pub(super) fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        let t = &self.tensors[name];
        let mut buf = vec![0u8; (t.data_offsets.1 - t.data_offsets.0) as usize];
        self.file
            .seek(SeekFrom::Start(self.data_start + t.data_offsets.0))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| ck_err(&self.path, format!("reading `{name}`: {e}")))?;
        Ok(buf)
    }

    /// Checks that `sums` names exactly the file's tensors and that every
    /// tensor's bytes have their recorded checksum.
    pub(super) fn verify_checksums(&mut self, sums: &BTreeMap<String, String>) -> Result<()> {
        if let Some(ghost) = sums.keys().find(|k| !self.tensors.contains_key(*k)) {
            return Err(ck_err(
                &self.path,
                format!("a checksum is recorded for `{ghost}`, which the file does not hold"),
            ));
        }
        let mut names: Vec<String> = self.tensors.keys().cloned().collect();
        names.sort();
        for name in names {
            let want = sums
                .get(&name)
                .ok_or_else(|| ck_err(&self.path, format!("no checksum recorded for `{name}`")))?;
            let got = format!("{:016x}", fnv1a(&self.read(&name)?));
            if &got != want {
                return Err(ck_err(
                    &self.path,
                    format!("checksum mismatch in tensor `{name}`: the data is corrupt"),
                ));
            }
        }
        Ok(())
    }

    /// Tensor `name` read again for the upload, its checksum verified again
    /// (the file may have been modified in place since `verify_checksums`).
    pub(super) fn read_verified(
        &mut self,
        name: &str,
        sums: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>> {
        let v = self.read(name)?;
        let got = format!("{:016x}", fnv1a(&v));
        if sums.get(name) != Some(&got) {
            return Err(ck_err(
                &self.path,
                format!("tensor `{name}` changed on disk while it was loading (checksum mismatch)"),
            ));
        }
        Ok(v)
    }

    /// Checks the `format` and `version` metadata keys: `format`, and one
    /// of `versions`, which is returned.
    pub(super) fn check_format(&self, format: &str, versions: &[u32]) -> Result<u32> {
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
        versions
            .iter()
            .copied()
            .find(|v| v.to_string() == version)
            .ok_or_else(|| {
                let known: Vec<String> = versions.iter().map(u32::to_string).collect();
                ck_err(
                    &self.path,
                    format!(
                        "version {version} is not supported; this build reads version {}",
                        known.join(" and ")
                    ),
                )
            })
    }

    /// Refuses metadata keys other than `allowed`: every byte of the header
    /// is either checked or refused.
    pub(super) fn check_metadata_keys(&self, allowed: &[&str]) -> Result<()> {
        let mut unknown: Vec<&String> = self
            .metadata
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(k) => Err(ck_err(
                &self.path,
                format!("unexpected metadata key `{k}`; this format has only {allowed:?}"),
            )),
        }
    }

    /// The metadata string `key`; with `checksum_key`, verified against the
    /// FNV-1a 64 of its UTF-8 bytes recorded under that key.
    pub(super) fn metadata_str(&self, key: &str, checksum_key: Option<&str>) -> Result<String> {
        let v = self
            .metadata
            .get(key)
            .ok_or_else(|| ck_err(&self.path, format!("no `{key}` metadata")))?;
        if let Some(ck) = checksum_key {
            let want = self.metadata.get(ck).ok_or_else(|| {
                ck_err(
                    &self.path,
                    format!("no `{ck}` metadata: the `{key}` document cannot be verified"),
                )
            })?;
            let got = format!("{:016x}", fnv1a(v.as_bytes()));
            if &got != want {
                return Err(ck_err(
                    &self.path,
                    format!(
                        "metadata checksum mismatch: the `{key}` document hashes to {got}, \
                         `{ck}` records {want}: the metadata is corrupt"
                    ),
                ));
            }
        }
        Ok(v.clone())
    }
}

/// Checks that the tensors' byte ranges tile `[0, data_len)` of the data
/// section: each ends at or after its start and within the section, and
/// sorted by start they follow each other with no overlap and no hole.
fn check_spans(
    path: &Path,
    tensors: &[(String, HeaderTensor)],
    data_len: u64,
    file_len: u64,
) -> Result<()> {
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let (b, e) = t.data_offsets;
        if e < b {
            return Err(ck_err(
                path,
                format!("tensor `{name}` has data offsets [{b}, {e}): it ends before it begins"),
            ));
        }
        if e > data_len {
            return Err(ck_err(
                path,
                format!(
                    "truncated or corrupt offsets: tensor `{name}` spans bytes [{b}, {e}) of \
                     the data section, which holds {data_len} bytes (the file has {file_len})"
                ),
            ));
        }
        spans.push((b, e, name));
    }
    spans.sort_unstable();
    let mut at = 0u64;
    let mut prev: Option<(u64, u64, &str)> = None;
    for &(b, e, name) in &spans {
        if b > at {
            return Err(ck_err(
                path,
                format!(
                    "bytes [{at}, {b}) of the data section belong to no tensor (a hole before \
                     tensor `{name}`)"
                ),
            ));
        }
        if let Some((pb, pe, pname)) = prev
            && b < at
        {
            return Err(ck_err(
                path,
                format!(
                    "tensor `{name}` (bytes [{b}, {e})) overlaps tensor `{pname}` (bytes \
                     [{pb}, {pe}))"
                ),
            ));
        }
        at = e;
        prev = Some((b, e, name));
    }
    if at != data_len {
        return Err(ck_err(
            path,
            format!(
                "padded: bytes [{at}, {data_len}) of the data section belong to no tensor (the \
                 file has {file_len} bytes)"
            ),
        ));
    }
    Ok(())
}

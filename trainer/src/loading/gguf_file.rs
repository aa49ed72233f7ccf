//! A reader for the GGUF container (versions 2 and 3) and dequantisers for the block formats the
//! models we use are stored in.
//!
//! Written here rather than taken from candle-core: candle would bring its whole tensor library
//! (gemm kernels and more) into the build for a 200-line parser; the parity tests against
//! transformers (whose gguf-py dequantises independently) pin every format used by our models.
//!
//! Layout reminders: all integers are little-endian; a tensor's dims are listed innermost first
//! (GGUF `ne[0]` is the row length), so the row-major shape is the reversed list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// Any integer kind as i64 (GGUF writers differ in which width they pick).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::I8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// ggml tensor types this reader can dequantise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Row-major shape (GGUF dims reversed).
    pub shape: Vec<i64>,
    pub ty: GgmlType,
    /// Absolute byte offset in the file.
    offset: usize,
    len: usize,
}

/// A memory-mapped GGUF file: metadata parsed, tensors dequantised on request.
pub struct GgufFile {
    path: PathBuf,
    map: memmap2::Mmap,
    pub metadata: HashMap<String, Value>,
    pub tensors: HashMap<String, TensorInfo>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("truncated header at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn len(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        // Any count larger than the remaining bytes is corrupt; refuse it before allocating.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.data.len() - self.pos)
            .ok_or_else(|| {
                format!(
                    "length {n} at byte {} runs past the end (truncated?)",
                    self.pos
                )
            })
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<Value, String> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array()?)),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                if depth > 2 {
                    return Err("arrays nested too deeply".into());
                }
                let item_ty = self.u32()?;
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(item_ty, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(format!("unknown metadata value type {other}")),
        })
    }
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only and private to this process; a concurrent writer
        // truncating the file could fault us, which is the usual caveat of reading model files.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (metadata, tensors) = Self::parse(&map).map_err(|reason| Error::Gguf {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            metadata,
            tensors,
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse(data: &[u8]) -> Result<(HashMap<String, Value>, HashMap<String, TensorInfo>), String> {
        let mut c = Cursor { data, pos: 0 };
        if c.take(4)? != b"GGUF" {
            return Err("bad magic (not a GGUF file)".into());
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(format!("unsupported GGUF version {version}"));
        }
        let n_tensors = c.len()?;
        let n_kv = c.len()?;
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let value = c.value(ty, 0)?;
            metadata.insert(key, value);
        }
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()? as usize;
            if n_dims > 4 {
                return Err(format!("tensor {name} has {n_dims} dims"));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = c.u64()?;
                dims.push(i64::try_from(d).map_err(|_| format!("tensor {name}: dim {d}"))?);
            }
            let ty_id = c.u32()?;
            let ty = GgmlType::from_id(ty_id)
                .ok_or_else(|| format!("tensor {name}: unsupported ggml type {ty_id}"))?;
            let offset = c.u64()?;
            raw.push((name, dims, ty, offset));
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_i64)
            .unwrap_or(32);
        let alignment = usize::try_from(alignment)
            .ok()
            .filter(|a| a.is_power_of_two())
            .ok_or_else(|| format!("bad alignment {alignment}"))?;
        let data_start = c.pos.div_ceil(alignment) * alignment;
        let mut tensors = HashMap::new();
        for (name, dims, ty, offset) in raw {
            let numel: i64 = dims.iter().product();
            let (per_block, bytes) = ty.block();
            let numel = usize::try_from(numel).map_err(|_| format!("tensor {name}: size"))?;
            if dims
                .first()
                .is_some_and(|&d| !(d as usize).is_multiple_of(per_block))
            {
                return Err(format!(
                    "tensor {name}: row length not a multiple of {per_block}"
                ));
            }
            let len = numel / per_block * bytes;
            let start = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(data_start))
                .filter(|s| s.checked_add(len).is_some_and(|e| e <= data.len()))
                .ok_or_else(|| format!("tensor {name}: data out of bounds (truncated file?)"))?;
            let shape = dims.into_iter().rev().collect();
            tensors.insert(
                name,
                TensorInfo {
                    shape,
                    ty,
                    offset: start,
                    len,
                },
            );
        }
        Ok((metadata, tensors))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Dequantises a tensor to f32 values in row-major order.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<i64>)> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::MissingWeight(name.to_string()))?;
        let bytes = &self.map[info.offset..info.offset + info.len];
        Ok((dequantize(info.ty, bytes), info.shape.clone()))
    }
}

fn f16(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// The 6-bit scale and min of sub-block `j` in the packed 12-byte K-quant scales.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Expands `bytes` (whole blocks of type `ty`) to f32, following ggml's reference dequantisers
/// operation for operation so that the values match gguf-py's bit for bit.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let (per_block, block_bytes) = ty.block();
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * per_block);
    for b in bytes.chunks_exact(block_bytes) {
        match ty {
            GgmlType::F32 => out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            GgmlType::F16 => out.push(f16(b)),
            GgmlType::BF16 => out.push(half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            GgmlType::Q4_0 => {
                let d = f16(b);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0xF) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
            GgmlType::Q4_1 => {
                let (d, m) = (f16(b), f16(&b[2..]));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| (q & 0xF) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let (d, m, rest) = if ty == GgmlType::Q5_0 {
                    (f16(b), 0.0, &b[2..])
                } else {
                    (f16(b), f16(&b[2..]), &b[4..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                let offset = if ty == GgmlType::Q5_0 { 16 } else { 0 };
                let value = |q: u8, hi: u32| -> f32 {
                    let x = (q as i32 | ((hi & 1) << 4) as i32) - offset;
                    if ty == GgmlType::Q5_0 {
                        x as f32 * d
                    } else {
                        x as f32 * d + m
                    }
                };
                for (j, &q) in qs.iter().enumerate() {
                    out.push(value(q & 0xF, qh >> j));
                }
                for (j, &q) in qs.iter().enumerate() {
                    out.push(value(q >> 4, qh >> (j + 16)));
                }
            }
            GgmlType::Q8_0 => {
                let d = f16(b);
                out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
            GgmlType::Q4K => {
                let (d, dmin) = (f16(b), f16(&b[2..]));
                let scales = &b[4..16];
                let qs = &b[16..144];
                for (i, q) in qs.chunks_exact(32).enumerate() {
                    let (sc, m) = scale_min_k4(2 * i, scales);
                    let (d1, m1) = (d * sc as f32, dmin * m as f32);
                    let (sc, m) = scale_min_k4(2 * i + 1, scales);
                    let (d2, m2) = (d * sc as f32, dmin * m as f32);
                    out.extend(q.iter().map(|&x| d1 * (x & 0xF) as f32 - m1));
                    out.extend(q.iter().map(|&x| d2 * (x >> 4) as f32 - m2));
                }
            }
            GgmlType::Q5K => {
                let (d, dmin) = (f16(b), f16(&b[2..]));
                let scales = &b[4..16];
                let qh = &b[16..48];
                let qs = &b[48..176];
                for (i, q) in qs.chunks_exact(32).enumerate() {
                    let (u1, u2) = (1u8 << (2 * i), 2u8 << (2 * i));
                    let (sc, m) = scale_min_k4(2 * i, scales);
                    let (d1, m1) = (d * sc as f32, dmin * m as f32);
                    let (sc, m) = scale_min_k4(2 * i + 1, scales);
                    let (d2, m2) = (d * sc as f32, dmin * m as f32);
                    for (l, &x) in q.iter().enumerate() {
                        let hi = if qh[l] & u1 != 0 { 16 } else { 0 };
                        out.push(d1 * ((x & 0xF) + hi) as f32 - m1);
                    }
                    for (l, &x) in q.iter().enumerate() {
                        let hi = if qh[l] & u2 != 0 { 16 } else { 0 };
                        out.push(d2 * ((x >> 4) + hi) as f32 - m2);
                    }
                }
            }
            GgmlType::Q6K => {
                let ql_all = &b[0..128];
                let qh_all = &b[128..192];
                let sc_all = &b[192..208];
                let d = f16(&b[208..]);
                for half_block in 0..2 {
                    let ql = &ql_all[64 * half_block..];
                    let qh = &qh_all[32 * half_block..];
                    let sc = &sc_all[8 * half_block..];
                    let mut y = [0f32; 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        let s = |k: usize| d * (sc[is + k] as i8) as f32;
                        y[l] = s(0) * q1 as f32;
                        y[l + 32] = s(2) * q2 as f32;
                        y[l + 64] = s(4) * q3 as f32;
                        y[l + 96] = s(6) * q4 as f32;
                    }
                    out.extend_from_slice(&y);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block_scales_signed_bytes() {
        let mut block = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = dequantize(GgmlType::Q8_0, &block);
        assert_eq!(v.len(), 32);
        assert_eq!(v[0], -8.0);
        assert_eq!(v[31], 7.5);
    }

    #[test]
    fn q4_1_puts_low_nibbles_first_then_high_nibbles() {
        let mut block = half::f16::from_f32(2.0).to_le_bytes().to_vec();
        block.extend(half::f16::from_f32(-1.0).to_le_bytes());
        block.extend([0x21u8; 16]);
        let v = dequantize(GgmlType::Q4_1, &block);
        assert_eq!(v[..16], [1.0; 16]);
        assert_eq!(v[16..], [3.0; 16]);
    }

    #[test]
    fn truncated_header_is_an_error_not_a_panic() {
        let mut data = b"GGUF".to_vec();
        data.extend(3u32.to_le_bytes());
        data.extend(u64::MAX.to_le_bytes());
        assert!(GgufFile::parse(&data).is_err());
        assert!(GgufFile::parse(b"GGU").is_err());
        assert!(GgufFile::parse(b"NOPE\x03\0\0\0").is_err());
    }
}

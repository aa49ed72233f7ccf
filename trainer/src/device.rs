//! Device, dtype and thread settings, chosen explicitly rather than left to libtorch's defaults
//! (its default thread count makes small ops 10–80× slower on a loaded CPU).

use crate::{Error, Result};
use tch::{Device, Kind};

/// Where the model runs, and the dtype that goes with it: f32 on CPU (exact parity with the
/// reference), bf16 on CUDA (what the GPU is fast at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub device: Device,
    pub kind: Kind,
}

impl Placement {
    pub fn cpu() -> Self {
        Placement {
            device: Device::Cpu,
            kind: Kind::Float,
        }
    }

    /// Parses a device (`cpu`, `cuda`, `cuda:N`) and a dtype (`auto`, `f32`, `bf16`);
    /// `auto` is f32 on CPU and bf16 on CUDA. CUDA is checked to be present now, not at
    /// first use. f32 on CUDA is what a parity check against transformers wants; half
    /// precision on CPU is refused, as libtorch's CPU kernels for it are slow or missing.
    pub fn parse_with_dtype(name: &str, dtype: &str) -> Result<Self> {
        let mut placement = Self::parse(name)?;
        placement.kind = match (dtype, placement.device) {
            ("auto", _) => placement.kind,
            ("f32" | "float32", _) => Kind::Float,
            ("bf16" | "bfloat16", Device::Cuda(_)) => Kind::BFloat16,
            ("bf16" | "bfloat16", _) => {
                return Err(Error::InvalidArgument(format!(
                    "--dtype {dtype} needs a CUDA device (the CPU path runs f32)"
                )));
            }
            (other, _) => {
                return Err(Error::InvalidArgument(format!(
                    "unknown dtype `{other}` (expected auto, f32 or bf16)"
                )));
            }
        };
        Ok(placement)
    }

    /// Parses `cpu`, `cuda` or `cuda:N` with that device's default dtype.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cpu" => Ok(Self::cpu()),
            _ => {
                let index = match name.strip_prefix("cuda") {
                    Some("") => 0,
                    Some(rest) => rest
                        .strip_prefix(':')
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or_else(|| Error::InvalidArgument(format!("bad device `{name}`")))?,
                    None => {
                        return Err(Error::InvalidArgument(format!(
                            "unknown device `{name}` (expected cpu or cuda[:N])"
                        )));
                    }
                };
                if !tch::Cuda::is_available() {
                    return Err(Error::InvalidArgument(
                        "--device cuda asked for, but libtorch sees no CUDA device".into(),
                    ));
                }
                let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
                if index >= count {
                    return Err(Error::InvalidArgument(format!(
                        "--device {name}: libtorch sees {count} CUDA device(s)"
                    )));
                }
                Ok(Placement {
                    device: Device::Cuda(index),
                    kind: Kind::BFloat16,
                })
            }
        }
    }
}

/// Waits for the device's queued work: CUDA kernels run asynchronously, so a timer read
/// without this measures only the launch.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i64::try_from(i).unwrap_or(0));
    }
}

/// Sets libtorch's intra-op thread count; `None` means one per available core.
pub fn set_threads(threads: Option<usize>) -> usize {
    let n = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let n = n.max(1);
    tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_defaults_to_f32_on_cpu_and_refuses_half_there() {
        assert_eq!(
            Placement::parse_with_dtype("cpu", "auto").unwrap(),
            Placement::cpu()
        );
        assert_eq!(
            Placement::parse_with_dtype("cpu", "f32").unwrap(),
            Placement::cpu()
        );
        let err = Placement::parse_with_dtype("cpu", "bf16").unwrap_err();
        assert!(err.to_string().contains("needs a CUDA device"), "{err}");
        let err = Placement::parse_with_dtype("cpu", "f64").unwrap_err();
        assert!(err.to_string().contains("unknown dtype"), "{err}");
        let err = Placement::parse("gpu").unwrap_err();
        assert!(err.to_string().contains("unknown device"), "{err}");
    }
}

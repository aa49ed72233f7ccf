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

    /// Parses `cpu`, `cuda` or `cuda:N`; CUDA is checked to be present now, not at first use.
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
                Ok(Placement {
                    device: Device::Cuda(index),
                    kind: Kind::BFloat16,
                })
            }
        }
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

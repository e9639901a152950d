//! One-way latency: the `xdp` engine stamps each probe frame ([`FrameSpec::latency_probe`])
//! with `bpf_ktime_get_ns()` as it leaves, and [`LatencyReceiver`], an XDP program at the far
//! end of the path, histograms `now - stamp` per CPU in the kernel. Both ends read the same
//! host clock, so nothing is synchronised and no user space sits in the measured path.
//!
//! The histogram is log-linear ([`xdpwall_common::lat_bucket`]): exact to 64 ns, then 32
//! buckets per power of two (values known within 3%), up to 69 s.
//!
//! [`FrameSpec::latency_probe`]: crate::FrameSpec::latency_probe

use aya::{
    maps::{Array, MapData, PerCpuArray, PerCpuValues},
    programs::{Xdp, XdpMode},
    Ebpf,
};
use xdpwall_common::{lat_bucket_low, LatConfig, LatHist, LAT_BUCKETS};

use crate::xdp::{chain, load_object, load_prog, XdpEngineError};

/// Latencies measured: counts, extremes and the histogram, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Probes measured.
    pub count: u64,
    /// Frames that arrived but were not probes.
    pub other: u64,
    /// Smallest latency, ns.
    pub min_ns: u64,
    /// Largest latency, ns.
    pub max_ns: u64,
    /// Sum of all latencies, ns.
    pub sum_ns: u64,
    /// Histogram: bucket `i` counts latencies from [`lat_bucket_low`]`(i)` up to the next
    /// bucket's low edge.
    #[serde(skip)]
    pub buckets: Vec<u64>,
}

impl Latency {
    /// Adds another CPU's (or run's) latencies to these.
    pub fn add(&mut self, o: &Latency) {
        if o.count > 0 {
            self.min_ns = if self.count == 0 {
                o.min_ns
            } else {
                self.min_ns.min(o.min_ns)
            };
            self.max_ns = self.max_ns.max(o.max_ns);
        }
        self.count += o.count;
        self.other += o.other;
        self.sum_ns += o.sum_ns;
        self.buckets
            .resize(self.buckets.len().max(o.buckets.len()), 0);
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }

    /// Mean latency, ns (None without probes).
    pub fn mean_ns(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64)
    }

    /// The latency at quantile `q` (0..=1), ns: the upper edge of the bucket it falls in (as
    /// HDR histograms report it), kept within the measured min and max (quantile 0 is the
    /// min). None without probes.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        if q <= 0.0 {
            return Some(self.min_ns);
        }
        let want = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                let high = if i + 1 < LAT_BUCKETS {
                    lat_bucket_low(i + 1) - 1
                } else {
                    u64::MAX
                };
                return Some(high.clamp(self.min_ns, self.max_ns));
            }
        }
        Some(self.max_ns)
    }

    fn of(h: &LatHist) -> Latency {
        Latency {
            count: h.count,
            other: h.other,
            min_ns: h.min_ns,
            max_ns: h.max_ns,
            sum_ns: h.sum_ns,
            buckets: h.buckets.to_vec(),
        }
    }
}

/// The latency receiver (`xdpwall_latency`) attached to an interface of the calling thread's
/// namespace: it measures every probe and drops it, and passes other frames. Detached when
/// dropped.
pub struct LatencyReceiver {
    ebpf: Ebpf,
}

impl LatencyReceiver {
    /// Attaches the receiver to `iface` (in the calling thread's namespace) in `mode`, for
    /// probes whose marker sits at `marker_off` ([`crate::FrameSpec::probe_offset`]).
    pub fn attach(
        iface: &str,
        marker_off: usize,
        mode: XdpMode,
    ) -> Result<LatencyReceiver, XdpEngineError> {
        let mut ebpf = load_object()?;
        let mut config: Array<&mut MapData, LatConfig> = Array::try_from(
            ebpf.map_mut("XW_LAT_CONFIG")
                .ok_or_else(|| XdpEngineError::Load("map XW_LAT_CONFIG missing".into()))?,
        )
        .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        let cfg = LatConfig {
            magic_off: marker_off as u32,
            _pad: 0,
        };
        config
            .set(0, cfg, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        let prog = load_prog(&mut ebpf, "xdpwall_latency")?;
        prog.attach(iface, mode)
            .map_err(|e| XdpEngineError::Load(format!("attaching to {iface}: {}", chain(&e))))?;
        Ok(LatencyReceiver { ebpf })
    }

    fn map(&mut self) -> Result<PerCpuArray<&mut MapData, LatHist>, XdpEngineError> {
        PerCpuArray::try_from(
            self.ebpf
                .map_mut("XW_LAT")
                .ok_or_else(|| XdpEngineError::Load("map XW_LAT missing".into()))?,
        )
        .map_err(|e| XdpEngineError::Load(chain(&e)))
    }

    /// The latencies measured since the last reset, summed over CPUs.
    pub fn latency(&mut self) -> Result<Latency, XdpEngineError> {
        let v = self
            .map()?
            .get(&0, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        let mut all = Latency::default();
        for h in v.iter() {
            all.add(&Latency::of(h));
        }
        Ok(all)
    }

    /// Forgets every measurement.
    pub fn reset(&mut self) -> Result<(), XdpEngineError> {
        let n = aya::util::nr_cpus().map_err(|(_, e)| XdpEngineError::Load(e.to_string()))?;
        let zero = PerCpuValues::try_from(vec![LatHist::default(); n])
            .map_err(|e| XdpEngineError::Load(e.to_string()))?;
        self.map()?
            .set(0, zero, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))
    }

    /// The program (for its id, or to detach early).
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut("xdpwall_latency")
            .and_then(|p| p.try_into().ok())
            .expect("loaded in attach()")
    }
}

#[cfg(test)]
mod tests {
    use super::Latency;
    use xdpwall_common::{lat_bucket, LAT_BUCKETS};

    fn of(values: &[u64]) -> Latency {
        let mut l = Latency {
            buckets: vec![0; LAT_BUCKETS],
            ..Latency::default()
        };
        for &v in values {
            l.add(&Latency {
                count: 1,
                min_ns: v,
                max_ns: v,
                sum_ns: v,
                buckets: {
                    let mut b = vec![0; LAT_BUCKETS];
                    b[lat_bucket(v)] = 1;
                    b
                },
                other: 0,
            });
        }
        l
    }

    #[test]
    fn quantiles_come_from_the_histogram_within_its_precision() {
        // 1,000 latencies of 1..=1000 us.
        let v: Vec<u64> = (1..=1000).map(|k| k * 1000).collect();
        let l = of(&v);
        assert_eq!(l.count, 1000);
        assert_eq!((l.min_ns, l.max_ns), (1_000, 1_000_000));
        for (q, exact) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = l.quantile_ns(q).unwrap() as f64;
            assert!(
                got >= exact && got <= exact * (1.0 + 1.0 / 32.0),
                "p{q}: {got} vs {exact}"
            );
        }
        assert_eq!(l.quantile_ns(0.0), Some(1_000), "the minimum, kept exact");
        assert_eq!(
            l.quantile_ns(1.0),
            Some(1_000_000),
            "the maximum, kept exact"
        );
        assert!((l.mean_ns().unwrap() - 500_500.0).abs() < 1e-6);
        assert_eq!(Latency::default().quantile_ns(0.5), None);
    }
}

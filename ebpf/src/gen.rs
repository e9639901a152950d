//! The in-kernel traffic engine and the benchmark baseline.
//!
//! - `xdpwall_gen` runs under BPF_PROG_TEST_RUN with live frames: each run takes the template
//!   frame, rewrites the flow fields that vary (IPv4 address or the low 32 bits of an IPv6 one,
//!   ports) from a per-CPU sequence number or a random number, fixes the checksums
//!   incrementally, and redirects the frame out of the configured interface. Paced (a gap
//!   set in its configuration), it sends a frame only when the gap since the last one has
//!   passed and drops the runs in between unsent, counting sent frames and their gaps.
//!   With a timestamp offset set, every sent frame carries `bpf_ktime_get_ns()` at that
//!   offset (a latency probe).
//! - `xdpwall_count_drop` counts frames per CPU and drops them: the cheapest possible XDP
//!   program, the ceiling the filter is compared with. `xdpwall_count_pass` counts and passes
//!   them: the baseline of the latency of passed frames.
//! - `xdpwall_latency`, on the receiving end of a latency path, histograms `now - stamp` of
//!   every probe (one host clock at both ends) and drops it; other frames pass.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        bindings::xdp_action,
        helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_redirect},
        macros::{map, xdp},
        maps::{Array, PerCpuArray},
        programs::XdpContext,
    };
    use xdpwall_common::{
        gen_field, lat_bucket, spread, Counter, GenConfig, GenPace, LatConfig, LatHist,
        LAT_BUCKETS, LAT_MAGIC, PACE_BUCKETS, PACE_CATCH_UP,
    };

    #[map]
    static XW_GEN_CONFIG: Array<GenConfig> = Array::with_max_entries(1, 0);
    /// Source addresses to cycle through (`GenConfig::src_list`); user space sizes it at load.
    #[map]
    static XW_GEN_SRC: Array<[u8; 16]> = Array::with_max_entries(1, 0);
    #[map]
    static XW_GEN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
    #[map]
    static XW_GEN_PACE: PerCpuArray<GenPace> = PerCpuArray::with_max_entries(1, 0);
    #[map]
    static XW_COUNT: PerCpuArray<Counter> = PerCpuArray::with_max_entries(1, 0);
    #[map]
    static XW_LAT_CONFIG: Array<LatConfig> = Array::with_max_entries(1, 0);
    #[map]
    static XW_LAT: PerCpuArray<LatHist> = PerCpuArray::with_max_entries(1, 0);

    #[inline(always)]
    fn ptr<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
        // SAFETY: ctx.ctx is the kernel's xdp_md; volatile so the check below is kept.
        let (start, end) = unsafe {
            (
                core::ptr::read_volatile(&(*ctx.ctx).data) as usize,
                core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize,
            )
        };
        if start + off + core::mem::size_of::<T>() > end {
            return None;
        }
        Some((start + off) as *mut T)
    }

    /// RFC 1624 incremental update of a ones'-complement checksum for a changed 16-bit word.
    #[inline(always)]
    fn csum_replace(csum: u16, old: u16, new: u16) -> u16 {
        let mut sum = (!csum as u32) + (!old as u32 & 0xffff) + new as u32;
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        !(sum as u16)
    }

    /// A transport checksum as stored: a UDP checksum that comes out 0 is sent as 0xffff, the
    /// same value in ones' complement (0 means "no checksum", which IPv6 receivers drop: one
    /// probe in 65,536 was lost so).
    #[inline(always)]
    fn l4_csum(cfg: &GenConfig, sum: u16) -> [u8; 2] {
        // 6: the checksum's offset in a UDP header (TCP's is 16).
        if sum == 0 && cfg.l4_csum_off == 6 {
            [0xff, 0xff]
        } else {
            sum.to_be_bytes()
        }
    }

    /// Replaces a big-endian 32-bit value at `p`, returning (old, new) as two word pairs.
    #[inline(always)]
    unsafe fn set_u32(p: *mut [u8; 4], v: u32) -> [(u16, u16); 2] {
        let old = u32::from_be_bytes(*p);
        *p = v.to_be_bytes();
        [
            ((old >> 16) as u16, (v >> 16) as u16),
            (old as u16, v as u16),
        ]
    }

    /// The number that picks field `field`'s value: random when its `random` bit is set, else
    /// the per-CPU sequence number.
    #[inline(always)]
    fn pick(cfg: &GenConfig, field: usize, seq: u64) -> u32 {
        if cfg.random & (1 << field) != 0 {
            // SAFETY: helper without arguments.
            unsafe { bpf_get_prandom_u32() }
        } else {
            seq as u32
        }
    }

    #[inline(always)]
    fn value(cfg: &GenConfig, field: usize, seq: u64) -> u32 {
        let span = cfg.span[field];
        if span <= 1 {
            return cfg.base[field];
        }
        let v = cfg.base[field].wrapping_add(pick(cfg, field, seq) % span);
        if cfg.spread & (1 << field) != 0 {
            spread(v)
        } else {
            v
        }
    }

    #[xdp]
    pub fn xdpwall_gen(ctx: XdpContext) -> u32 {
        match generate(&ctx) {
            Some(ifindex) => {
                // SAFETY: plain helper call.
                unsafe { bpf_redirect(ifindex, 0) as u32 }
            }
            None => xdp_action::XDP_DROP,
        }
    }

    /// Paced sending: whether this run's frame is due. Frames that fell behind their times
    /// catch up back to back, up to [`PACE_CATCH_UP`] of them; further behind, the schedule
    /// restarts from now and the rate falls short (the sent count shows it) rather than
    /// leaving in a longer burst.
    #[inline(always)]
    fn due(cfg: &GenConfig) -> bool {
        let Some(p) = XW_GEN_PACE.get_ptr_mut(0) else {
            return true;
        };
        // SAFETY: helper without arguments; per-CPU slot, only this CPU uses it.
        unsafe {
            let now = bpf_ktime_get_ns();
            let p = &mut *p;
            if p.next_ns == 0 {
                p.next_ns = now;
            } else if now < p.next_ns {
                p.held += 1;
                return false;
            } else {
                let gap = now - p.last_ns;
                let b = if cfg.bucket_ns == 0 {
                    0
                } else {
                    (gap / cfg.bucket_ns).min(PACE_BUCKETS as u64 - 1) as usize
                };
                if let Some(g) = p.gaps.get_mut(b) {
                    *g += 1;
                }
            }
            if now - p.next_ns > cfg.gap_ns * PACE_CATCH_UP {
                p.late += 1;
                p.next_ns = now;
            }
            p.next_ns += cfg.gap_ns;
            p.last_ns = now;
            p.sent += 1;
        }
        true
    }

    /// Makes the frame a probe again: restores its MACs and TTL (a forwarding DUT rewrote
    /// them in the page this run reuses), writes the time now at [`GenConfig::stamp_off`], and
    /// updates the checksums (the stamp's offset from the transport header is even, so it
    /// covers four whole words).
    #[inline(always)]
    fn probe(ctx: &XdpContext, cfg: &GenConfig) -> Option<()> {
        let l3 = cfg.l3_off as usize & 0xff;
        // SAFETY: every pointer comes from ptr(), which checked it against data_end.
        unsafe {
            *ptr::<[u8; 12]>(ctx, 0)? = cfg.macs;
            if cfg.v6 != 0 {
                *ptr::<u8>(ctx, l3 + 7)? = cfg.ttl;
            } else {
                let t = ptr::<[u8; 2]>(ctx, l3 + 8)?;
                let old = u16::from_be_bytes(*t);
                let new = (cfg.ttl as u16) << 8 | (old & 0xff);
                if old != new {
                    *t = new.to_be_bytes();
                    let c = ptr::<[u8; 2]>(ctx, l3 + 10)?;
                    *c = csum_replace(u16::from_be_bytes(*c), old, new).to_be_bytes();
                }
            }
            let p = ptr::<[u8; 8]>(ctx, cfg.stamp_off as usize & 0x7fe)?;
            let old = *p;
            let new = bpf_ktime_get_ns().to_le_bytes();
            *p = new;
            if cfg.l4_csum_off != 0 {
                let l4 = cfg.l4_off as usize & 0x1ff;
                let c = ptr::<[u8; 2]>(ctx, l4 + (cfg.l4_csum_off as usize & 0x1f))?;
                let mut sum = u16::from_be_bytes(*c);
                // UDP over IPv4 may carry no checksum (0); keep it that way.
                if sum != 0 || cfg.v6 != 0 {
                    for k in 0..4 {
                        let o = u16::from_be_bytes([old[2 * k], old[2 * k + 1]]);
                        let n = u16::from_be_bytes([new[2 * k], new[2 * k + 1]]);
                        sum = csum_replace(sum, o, n);
                    }
                    *c = l4_csum(cfg, sum);
                }
            }
        }
        Some(())
    }

    #[inline(always)]
    fn generate(ctx: &XdpContext) -> Option<u32> {
        let cfg = XW_GEN_CONFIG.get(0)?;
        if cfg.gap_ns != 0 && !due(cfg) {
            return None;
        }
        if cfg.stamp_off != 0 {
            probe(ctx, cfg)?;
        }
        // Fixed flows: the template already is every frame; nothing to count or rewrite.
        if cfg.span.iter().all(|&s| s <= 1) && cfg.src_list == 0 {
            return Some(cfg.ifindex);
        }
        let seq = match XW_GEN_SEQ.get_ptr_mut(0) {
            // SAFETY: per-CPU slot, only this CPU uses it.
            Some(p) => unsafe {
                let s = *p;
                *p = s + 1;
                s
            },
            None => 0,
        };
        let l3 = cfg.l3_off as usize & 0xff;
        let l4 = cfg.l4_off as usize & 0x1ff;
        // (old, new) 16-bit words the transport checksum must account for: source (8, of which
        // IPv4 uses 2), destination (2), ports; fields that do not vary are left alone (the
        // template, and every earlier run, already hold them).
        let mut l4_words = [(0u16, 0u16); 12];
        // SAFETY: every pointer comes from ptr(), which checked it against data_end.
        unsafe {
            let (src_off, dst_off) = if cfg.v6 != 0 {
                (l3 + 20, l3 + 36)
            } else {
                (l3 + 12, l3 + 16)
            };
            if cfg.src_list != 0 {
                let a = XW_GEN_SRC.get(pick(cfg, gen_field::SRC, seq) % cfg.src_list)?;
                // The whole address: IPv6's starts 8 bytes into the header (`src_off` is its
                // low 32 bits).
                let (words, src_off) = if cfg.v6 != 0 {
                    (4, l3 + 8)
                } else {
                    (1, src_off)
                };
                for k in 0..4 {
                    if k >= words {
                        break;
                    }
                    let v =
                        u32::from_be_bytes([a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3]]);
                    let s = set_u32(ptr::<[u8; 4]>(ctx, src_off + 4 * k)?, v);
                    l4_words[2 * k] = s[0];
                    l4_words[2 * k + 1] = s[1];
                }
            } else if cfg.span[gen_field::SRC] > 1 {
                let s = set_u32(
                    ptr::<[u8; 4]>(ctx, src_off)?,
                    value(cfg, gen_field::SRC, seq),
                );
                l4_words[0] = s[0];
                l4_words[1] = s[1];
            }
            if cfg.span[gen_field::DST] > 1 {
                let d = set_u32(
                    ptr::<[u8; 4]>(ctx, dst_off)?,
                    value(cfg, gen_field::DST, seq),
                );
                l4_words[8] = d[0];
                l4_words[9] = d[1];
            }
            let addr_changed =
                cfg.src_list != 0 || cfg.span[gen_field::SRC] > 1 || cfg.span[gen_field::DST] > 1;
            if cfg.v6 == 0 && addr_changed {
                let c = ptr::<[u8; 2]>(ctx, l3 + 10)?;
                let mut sum = u16::from_be_bytes(*c);
                for (o, n) in [l4_words[0], l4_words[1], l4_words[8], l4_words[9]] {
                    if o != n {
                        sum = csum_replace(sum, o, n);
                    }
                }
                *c = sum.to_be_bytes();
            }
            if cfg.has_ports != 0 {
                if cfg.span[gen_field::SPORT] > 1 {
                    let sp = ptr::<[u8; 2]>(ctx, l4)?;
                    let n = value(cfg, gen_field::SPORT, seq) as u16;
                    l4_words[10] = (u16::from_be_bytes(*sp), n);
                    *sp = n.to_be_bytes();
                }
                if cfg.span[gen_field::DPORT] > 1 {
                    let dp = ptr::<[u8; 2]>(ctx, l4 + 2)?;
                    let n = value(cfg, gen_field::DPORT, seq) as u16;
                    l4_words[11] = (u16::from_be_bytes(*dp), n);
                    *dp = n.to_be_bytes();
                }
            }
            if cfg.l4_csum_off != 0 && l4_words.iter().any(|(o, n)| o != n) {
                let c = ptr::<[u8; 2]>(ctx, l4 + (cfg.l4_csum_off as usize & 0x1f))?;
                let mut sum = u16::from_be_bytes(*c);
                // UDP over IPv4 may carry no checksum (0); keep it that way.
                if sum != 0 || cfg.v6 != 0 {
                    for (o, n) in l4_words {
                        if o != n {
                            sum = csum_replace(sum, o, n);
                        }
                    }
                    *c = l4_csum(cfg, sum);
                }
            }
        }
        Some(cfg.ifindex)
    }

    #[inline(always)]
    fn count(ctx: &XdpContext) {
        if let Some(c) = XW_COUNT.get_ptr_mut(0) {
            // SAFETY: per-CPU slot.
            unsafe {
                (*c).packets += 1;
                (*c).bytes += (ctx.data_end() - ctx.data()) as u64;
            }
        }
    }

    #[xdp]
    pub fn xdpwall_count_drop(ctx: XdpContext) -> u32 {
        count(&ctx);
        xdp_action::XDP_DROP
    }

    #[xdp]
    pub fn xdpwall_count_pass(ctx: XdpContext) -> u32 {
        count(&ctx);
        xdp_action::XDP_PASS
    }

    #[xdp]
    pub fn xdpwall_latency(ctx: XdpContext) -> u32 {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        let (Some(cfg), Some(h)) = (XW_LAT_CONFIG.get(0), XW_LAT.get_ptr_mut(0)) else {
            return xdp_action::XDP_PASS;
        };
        // SAFETY: h is this CPU's slot; p comes from ptr(), checked against data_end.
        unsafe {
            let h = &mut *h;
            let Some(p) = ptr::<[u8; 12]>(&ctx, cfg.magic_off as usize & 0x7ff) else {
                h.other += 1;
                return xdp_action::XDP_PASS;
            };
            let b = *p;
            let stamp = u64::from_le_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
            if b[..4] != LAT_MAGIC || stamp == 0 || stamp > now {
                h.other += 1;
                return xdp_action::XDP_PASS;
            }
            let d = now - stamp;
            h.count += 1;
            h.sum_ns += d;
            if h.min_ns == 0 || d < h.min_ns {
                h.min_ns = d;
            }
            if d > h.max_ns {
                h.max_ns = d;
            }
            if let Some(n) = h.buckets.get_mut(lat_bucket(d) & (LAT_BUCKETS - 1)) {
                *n += 1;
            }
        }
        xdp_action::XDP_DROP
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

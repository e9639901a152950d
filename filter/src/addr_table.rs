//! The IPv6 address table's contents: the networks of the hashed prefix lengths and the blocks
//! ([`xdpwall_common::block6_key`]) of one generation, placed into a bucketed cuckoo table (two candidate buckets of [`WAYS`] entries each, see
//! [`xdpwall_common::addr_buckets`]) that the program probes inline. Only the buckets that hold
//! entries are built; the loader writes them into the generation's part of the array.

use std::collections::HashMap;

use xdpwall_common::{
    addr_buckets, addr_key, block6_key, Addr6Bucket, Addr6Entry, ADDR_BUCKET_BITS, ADDR_CAPACITY,
    MIN_ADDR_BUCKET_BITS, WAYS,
};

/// One network for the table: its key ([`addr_key`] of dimension and prefix length), address
/// words (see [`addr_buckets`]) and bitmap slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrItem {
    /// [`addr_key`] of its dimension and prefix length (0: a free entry).
    pub key: u32,
    /// The network's address words.
    pub words: [u32; 4],
    /// Bitmap slot.
    pub slot: u32,
}

impl AddrItem {
    /// The item for IPv6 network `net` in dimension `dim` (0 source, 1 destination).
    pub fn new(dim: u32, net: &ipnet::IpNet, slot: u32) -> AddrItem {
        let ipnet::IpNet::V6(n) = net else {
            unreachable!("IPv4 networks are cut into ranges, not hashed: {net}");
        };
        let mut words = [0u32; 4];
        for (w, c) in words.iter_mut().zip(n.network().octets().chunks_exact(4)) {
            *w = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
        }
        AddrItem {
            key: addr_key(dim, n.prefix_len()),
            words,
            slot,
        }
    }

    /// The entry of IPv6 block `net` in dimension `dim` (see [`block6_key`]): its ranges are
    /// `count` from range `first` of the range array.
    pub fn block(dim: u32, net: ipnet::Ipv6Net, first: u32, count: u32) -> AddrItem {
        // A block is /64 or shorter: its network's last two words are 0 and carry the ranges.
        let mut item = AddrItem::new(dim, &net.into(), 0);
        item.key = block6_key(dim);
        item.words[2..].copy_from_slice(&[first, count]);
        item
    }

    /// Its two candidate buckets in a table of `1 << bits`: the program's hash (a block's over
    /// its first two words).
    pub fn buckets(&self, bits: u32) -> (u32, u32) {
        let w = self.words;
        if self.key == block6_key(0) || self.key == block6_key(1) {
            addr_buckets(self.key, &[w[0], w[1], 0, 0], bits)
        } else {
            addr_buckets(self.key, &w, bits)
        }
    }
}

/// Why networks did not fit.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// More networks than a generation holds.
    #[error("{0} hashed networks of one family exceed the table's {ADDR_CAPACITY} per rule set")]
    TooMany(usize),
    /// Cuckoo placement gave up (practically impossible at half load).
    #[error("could not place {0} hashed networks in the address table")]
    Placement(usize),
}

/// Buckets of one family's table that hold entries, by bucket index.
pub type Buckets = HashMap<u32, [AddrItem; WAYS]>;

const FREE: AddrItem = AddrItem {
    key: 0,
    words: [0; 4],
    slot: 0,
};

/// The bucket bits for `n` networks: the fewest that keep the table at most 40% full (see
/// [`xdpwall_common::GenInfo::addr_bits`]); a million networks fill the largest table to 80%.
pub fn bits_for(n: usize) -> u32 {
    let buckets = n.div_ceil(WAYS * 2 / 5).max(1);
    (buckets.next_power_of_two().trailing_zeros()).clamp(MIN_ADDR_BUCKET_BITS, ADDR_BUCKET_BITS)
}

/// Places `items` (all of one family) into `1 << bits` buckets.
pub fn build(items: &[AddrItem], bits: u32) -> Result<Buckets, TableError> {
    if items.len() > ADDR_CAPACITY {
        return Err(TableError::TooMany(items.len()));
    }
    let mut t: Buckets = HashMap::with_capacity(items.len());
    // A fixed xorshift sequence picks victims: the same networks give the same table.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for item in items {
        let mut cur = *item;
        // The bucket `cur` was just evicted from: it goes to its other one.
        let mut from = None;
        let mut placed = false;
        for _ in 0..1000 {
            let (c1, c2) = cur.buckets(bits);
            for b in [c1, c2] {
                match t.get_mut(&b) {
                    None => {
                        let mut bucket = [FREE; WAYS];
                        bucket[0] = cur;
                        t.insert(b, bucket);
                        placed = true;
                    }
                    Some(bucket) => {
                        if let Some(free) = bucket.iter_mut().find(|e| e.key == 0) {
                            *free = cur;
                            placed = true;
                        }
                    }
                }
                if placed {
                    break;
                }
            }
            if placed {
                break;
            }
            // Both full: evict a random entry of one of them; it moves to its other bucket.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let target = match from {
                Some(f) if f == c1 => c2,
                Some(_) => c1,
                None if rng & (1 << 40) != 0 => c2,
                None => c1,
            };
            let bucket = t.get_mut(&target).expect("both buckets are full");
            std::mem::swap(&mut bucket[(rng as usize) % WAYS], &mut cur);
            from = Some(target);
        }
        if !placed {
            return Err(TableError::Placement(items.len()));
        }
    }
    Ok(t)
}

/// The kernel layout of an IPv6 bucket.
pub fn bucket6(b: &[AddrItem; WAYS]) -> Addr6Bucket {
    let mut out = Addr6Bucket::default();
    for (o, e) in out.e.iter_mut().zip(b) {
        *o = Addr6Entry {
            tag: if e.key == 0 { 0 } else { e.key << 16 | e.slot },
            addr: e.words,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the program does: both buckets of the item's family, every way.
    fn find(t: &Buckets, bits: u32, item: &AddrItem) -> Option<u32> {
        let (b1, b2) = item.buckets(bits);
        [b1, b2]
            .iter()
            .filter_map(|b| t.get(b))
            .flat_map(|b| b.iter())
            .find(|e| e.key == item.key && e.words == item.words)
            .map(|e| e.slot)
    }

    #[test]
    fn a_full_table_finds_every_network_and_no_other() {
        // The most a generation holds, 80% of the largest table's entries.
        let items: Vec<AddrItem> = (0..ADDR_CAPACITY as u32)
            .map(|i| AddrItem {
                key: addr_key(i % 2, 128 - (i % 3) as u8),
                words: [0x2001_0db8, 0, i.wrapping_mul(2_654_435_761), i],
                slot: i % 8192,
            })
            .collect();
        let bits = bits_for(items.len());
        assert_eq!(bits, ADDR_BUCKET_BITS);
        let t = build(&items, bits).unwrap();
        for it in &items {
            assert_eq!(find(&t, bits, it), Some(it.slot));
        }
        let other = AddrItem::new(0, &"2001:db8:ffff::/64".parse().unwrap(), 0);
        assert!(!items
            .iter()
            .any(|i| i.key == other.key && i.words == other.words));
        assert_eq!(find(&t, bits, &other), None);
    }

    #[test]
    fn ipv6_networks_are_all_found_and_others_are_not() {
        let items: Vec<AddrItem> = (0..200_000u32)
            .map(|i| {
                let addr = std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | (i as u128) << 64);
                let net = ipnet::Ipv6Net::new(addr, 64).unwrap();
                AddrItem::new(i % 2, &net.into(), i)
            })
            .collect();
        let bits = bits_for(items.len());
        let t = build(&items, bits).unwrap();
        for it in &items {
            assert_eq!(find(&t, bits, it), Some(it.slot));
        }
        let other = AddrItem::new(0, &"2001:db8:ffff::/64".parse().unwrap(), 0);
        assert_eq!(find(&t, bits, &other), None);
    }

    #[test]
    fn small_tables_stay_small_and_at_most_40_percent_full() {
        assert_eq!(bits_for(0), MIN_ADDR_BUCKET_BITS);
        assert_eq!(bits_for(1024), 9);
        assert_eq!(bits_for(1025), 10);
        assert_eq!(bits_for(ADDR_CAPACITY), ADDR_BUCKET_BITS);
        for n in [1usize, 3, 200, 1024, 5000] {
            let items: Vec<AddrItem> = (0..n as u32)
                .map(|i| {
                    let host = std::net::IpAddr::from(std::net::Ipv6Addr::from(
                        (0x2001_0db8u128 << 96) + i as u128,
                    ));
                    AddrItem::new(0, &ipnet::IpNet::from(host), i)
                })
                .collect();
            let bits = bits_for(n);
            assert!(
                n * 5 <= (WAYS << bits) * 2,
                "{n} networks in {} buckets",
                1 << bits
            );
            let t = build(&items, bits).unwrap();
            assert!(t.keys().all(|&b| b < 1 << bits));
            for it in &items {
                assert_eq!(find(&t, bits, it), Some(it.slot));
            }
        }
    }

    #[test]
    fn too_many_is_an_error() {
        let items = vec![FREE; ADDR_CAPACITY + 1];
        assert!(matches!(
            build(&items, ADDR_BUCKET_BITS),
            Err(TableError::TooMany(_))
        ));
    }
}

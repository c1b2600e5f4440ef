//! Hashes of event ids, computed exactly as `eis_store::audit` computes them in SQL: a 60-bit
//! hash per id (the first 15 hex digits of md5 of the lowercase hyphenated id), summed modulo
//! 2^63 into an order-independent digest of a set; the same hash picks a compaction shard.

use md5::{Digest, Md5};

pub use eis_store::IdDigest;

const MOD_MASK: u64 = (1 << 63) - 1;

/// The 60-bit hash of one id as its archive text (`event_id` column).
pub fn id_hash(event_id: &str) -> u64 {
    let sum = Md5::digest(event_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&sum[..8]);
    u64::from_be_bytes(first) >> 4
}

/// The compaction shard of an id among `shards` (at least 1).
pub fn shard_of(event_id: &str, shards: u32) -> u32 {
    let n = u64::from(shards.max(1));
    u32::try_from(id_hash(event_id) % n).unwrap_or_default()
}

/// Adds one (distinct) id.
pub fn add(digest: &mut IdDigest, event_id: &str) {
    digest.count += 1;
    digest.sum = digest.sum.wrapping_add(id_hash(event_id)) & MOD_MASK;
}

/// The digest of the union of two disjoint sets.
pub fn merge(a: IdDigest, b: IdDigest) -> IdDigest {
    IdDigest {
        count: a.count + b.count,
        sum: a.sum.wrapping_add(b.sum) & MOD_MASK,
    }
}

/// `count:sum`, as stored in a compacted file's key-value metadata.
pub fn to_text(d: IdDigest) -> String {
    format!("{}:{}", d.count, d.sum)
}

pub fn from_text(text: &str) -> Option<IdDigest> {
    let (count, sum) = text.split_once(':')?;
    Some(IdDigest {
        count: count.parse().ok()?,
        sum: sum.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_and_digest_match_postgresql() {
        // psql: SELECT ('x' || substr(md5('01900000-0000-7000-8000-000000000001'), 1, 15))
        //   ::bit(60)::bigint, and the audit's sum over ...0001 and ...0002.
        let one = "01900000-0000-7000-8000-000000000001";
        let two = "01900000-0000-7000-8000-000000000002";
        assert_eq!(id_hash(one), 1_080_049_823_738_179_711);
        let mut d = IdDigest::default();
        add(&mut d, one);
        add(&mut d, two);
        assert_eq!(
            d,
            IdDigest {
                count: 2,
                sum: 1_275_055_124_851_284_995
            }
        );
    }

    #[test]
    fn the_digest_ignores_order_and_merges() {
        let ids = ["a", "b", "c", "d"];
        let mut forward = IdDigest::default();
        ids.iter().for_each(|id| add(&mut forward, id));
        let mut backward = IdDigest::default();
        ids.iter().rev().for_each(|id| add(&mut backward, id));
        assert_eq!(forward, backward);
        let (mut left, mut right) = (IdDigest::default(), IdDigest::default());
        add(&mut left, "a");
        add(&mut left, "b");
        add(&mut right, "c");
        add(&mut right, "d");
        assert_eq!(merge(left, right), forward);
        assert_eq!(from_text(&to_text(forward)), Some(forward));
        assert!(forward.sum <= MOD_MASK);
    }

    #[test]
    fn shards_cover_every_id() {
        for id in ["x", "y", "z"] {
            assert!(shard_of(id, 7) < 7);
            assert_eq!(shard_of(id, 1), 0);
            assert_eq!(shard_of(id, 0), 0);
        }
    }
}

//! Where a box lives: a fixed number of logical shards, mapped onto storage instances.
//!
//! A box hashes to one of [`LOGICAL_SHARDS`] logical shards (FNV-1a, 64 bits, over the box's
//! key bytes, modulo the shard count), and a logical shard to one of the configured instances
//! by jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014): growing from n to n + 1 instances moves only about 1/(n + 1) of the
//! shards. Both functions are part of the on-disk format: a box never spans shards, and the
//! map is written in a [`Manifest`] so that a store reopened with another instance count
//! refuses to start instead of looking for boxes in the wrong place.

use crate::message::BoxId;

/// Logical shards. Fixed for a store's life (it is in the manifest).
pub const LOGICAL_SHARDS: u32 = 1024;

/// The version of the on-disk format (keys, values, shard functions).
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format this version opens as it is: version 3 only added rows (memberships,
/// channel read state, views) and moved channel sends' idempotency rows to the channel's
/// instance, none of which a version-2 store has.
pub const OLDEST_READABLE_FORMAT: u32 = 2;

/// The logical shard of a box.
pub(crate) fn logical_shard(box_id: BoxId, logical_shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let (tag, id) = match box_id {
        BoxId::User(id) => (0u8, id),
        BoxId::Channel(id) => (1u8, id),
    };
    let mut hash = OFFSET;
    for byte in std::iter::once(tag).chain(id.to_be_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % u64::from(logical_shards.max(1))) as u32
}

/// The instance (0..instances) a logical shard lives on: jump consistent hash.
pub(crate) fn instance_of(logical: u32, instances: u32) -> u32 {
    let buckets = i64::from(instances.max(1));
    let mut key = u64::from(logical);
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < buckets {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // The next bucket this key jumps to: (bucket + 1) * 2^31 / ((key >> 33) + 1).
        let scale = f64::from(1u32 << 31) / ((key >> 33) as f64 + 1.0);
        next = ((bucket + 1) as f64 * scale) as i64;
    }
    u32::try_from(bucket).unwrap_or(0)
}

/// The instance a box lives on.
pub(crate) fn instance_of_box(box_id: BoxId, manifest: &Manifest) -> u32 {
    instance_of(
        logical_shard(box_id, manifest.logical_shards),
        manifest.instances,
    )
}

/// What a store's directory says about its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format: u32,
    /// [`LOGICAL_SHARDS`] when written.
    pub logical_shards: u32,
    /// Storage instances.
    pub instances: u32,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not a manifest this version can read.
    #[error("unreadable manifest: {0}")]
    Malformed(String),
    /// Written by another format version.
    #[error("the store has format {found}, this build reads formats 2 to {expected}")]
    Format {
        /// This build's.
        expected: u32,
        /// The store's.
        found: u32,
    },
    /// Opened with another layout than it was created with: boxes would be looked for on the
    /// wrong instance.
    #[error(
        "the store was created with {found_instances} instances and {found_shards} logical shards; opened with {instances} and {shards}"
    )]
    Layout {
        /// Asked for.
        instances: u32,
        /// Asked for.
        shards: u32,
        /// On disk.
        found_instances: u32,
        /// On disk.
        found_shards: u32,
    },
}

const MAGIC: &str = "columba-store";

impl Manifest {
    /// A manifest for a new store with `instances` instances.
    pub(crate) fn new(instances: u32) -> Self {
        Self {
            format: FORMAT_VERSION,
            logical_shards: LOGICAL_SHARDS,
            instances: instances.max(1),
        }
    }

    /// The manifest as text (one `name value` pair a line).
    pub(crate) fn encode(&self) -> String {
        format!(
            "{MAGIC}\nformat {}\nlogical_shards {}\ninstances {}\n",
            self.format, self.logical_shards, self.instances
        )
    }

    /// Reads a manifest written by [`Self::encode`].
    pub(crate) fn decode(text: &str) -> Result<Self, ManifestError> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(ManifestError::Malformed(
                "not a columba-store manifest".to_owned(),
            ));
        }
        let mut field = |name: &str| -> Result<u32, ManifestError> {
            let line = lines
                .next()
                .ok_or_else(|| ManifestError::Malformed(format!("missing {name}")))?;
            let value = line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .ok_or_else(|| {
                    ManifestError::Malformed(format!("expected {name}, found {line:?}"))
                })?;
            value
                .parse()
                .map_err(|_| ManifestError::Malformed(format!("bad {name}: {value:?}")))
        };
        let format = field("format")?;
        if !(OLDEST_READABLE_FORMAT..=FORMAT_VERSION).contains(&format) {
            return Err(ManifestError::Format {
                expected: FORMAT_VERSION,
                found: format,
            });
        }
        let manifest = Self {
            format,
            logical_shards: field("logical_shards")?,
            instances: field("instances")?,
        };
        if manifest.logical_shards == 0 || manifest.instances == 0 {
            return Err(ManifestError::Malformed(
                "zero shards or instances".to_owned(),
            ));
        }
        Ok(manifest)
    }

    /// Checks that a store created as `self` is opened with `instances` instances.
    pub(crate) fn check(&self, instances: u32) -> Result<(), ManifestError> {
        if self.instances != instances || self.logical_shards != LOGICAL_SHARDS {
            return Err(ManifestError::Layout {
                instances,
                shards: LOGICAL_SHARDS,
                found_instances: self.instances,
                found_shards: self.logical_shards,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_functions_are_stable() {
        // Part of the on-disk format: these values must never change.
        assert_eq!(
            logical_shard(BoxId::User(1), LOGICAL_SHARDS),
            logical_shard(BoxId::User(1), LOGICAL_SHARDS)
        );
        let fixed: Vec<u32> = (1..=5)
            .map(|id| logical_shard(BoxId::User(id), LOGICAL_SHARDS))
            .collect();
        assert_eq!(fixed, FIXED_USER_SHARDS);
        let jumps: Vec<u32> = (0..8).map(|logical| instance_of(logical, 10)).collect();
        assert_eq!(jumps, FIXED_JUMPS);
    }

    // Fixed with format 1 (a change would misplace every stored box); the same values come
    // out of an independent Python transcription of FNV-1a and of the jump hash paper's
    // algorithm.
    const FIXED_USER_SHARDS: [u32; 5] = [12, 293, 882, 755, 320];
    const FIXED_JUMPS: [u32; 8] = [0, 6, 6, 8, 1, 4, 9, 0];

    proptest! {
        #[test]
        fn shards_and_instances_stay_in_range(id in any::<i64>(), instances in 1u32..64) {
            let logical = logical_shard(BoxId::Channel(id), LOGICAL_SHARDS);
            prop_assert!(logical < LOGICAL_SHARDS);
            prop_assert!(instance_of(logical, instances) < instances);
        }

        #[test]
        fn growing_by_one_instance_moves_shards_only_to_the_new_one(instances in 1u32..32) {
            let mut moved = 0;
            for logical in 0..LOGICAL_SHARDS {
                let before = instance_of(logical, instances);
                let after = instance_of(logical, instances + 1);
                if before != after {
                    prop_assert_eq!(after, instances);
                    moved += 1;
                }
            }
            // About 1/(n + 1) of the shards move; allow generous slack.
            let expected = LOGICAL_SHARDS / (instances + 1);
            prop_assert!(moved <= expected * 2 + 16, "moved {} expected about {}", moved, expected);
        }
    }

    #[test]
    fn the_manifest_round_trips_and_refuses_another_layout() {
        let manifest = Manifest::new(4);
        let decoded = Manifest::decode(&manifest.encode()).unwrap();
        assert_eq!(decoded, manifest);
        assert!(decoded.check(4).is_ok());
        assert!(matches!(
            decoded.check(5),
            Err(ManifestError::Layout { .. })
        ));
        assert!(matches!(
            Manifest::decode("columba-store\nformat 4\nlogical_shards 1024\ninstances 4\n"),
            Err(ManifestError::Format { found: 4, .. })
        ));
        assert!(matches!(
            Manifest::decode("columba-store\nformat 1\nlogical_shards 1024\ninstances 4\n"),
            Err(ManifestError::Format { found: 1, .. })
        ));
        let older = Manifest::decode("columba-store\nformat 2\nlogical_shards 1024\ninstances 4\n")
            .unwrap();
        assert_eq!(older.format, 2, "a version-2 store opens as it is");
        assert!(Manifest::decode("something else").is_err());
        assert!(Manifest::decode("columba-store\nformat 1\nlogical_shards x\n").is_err());
        assert!(
            Manifest::decode("columba-store\nformat 1\nlogical_shards 1024\ninstances 0\n")
                .is_err()
        );
    }
}

//! Server-set metadata: uid, creationTimestamp, generation and resourceVersion.

use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Metadata fields the store owns; whatever a client sends for them is replaced.
pub const SERVER_FIELDS: &[&str] = &["resourceVersion", "generation", "creationTimestamp", "uid"];

/// The `metadata.resourceVersion` of an object as a revision, if it has a numeric one.
pub fn resource_version(object: &Value) -> Option<u64> {
    object
        .get("metadata")?
        .get("resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = Value::Object(Map::new());
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Removes the server-owned metadata, so that two objects can be compared by content.
pub(super) fn strip_server_fields(object: &mut Value) {
    let meta = meta_mut(object);
    for field in SERVER_FIELDS {
        meta.remove(*field);
    }
}

/// Stamps a newly created object.
pub(super) fn stamp_create(object: &mut Value, revision: u64) {
    let meta = meta_mut(object);
    meta.insert("resourceVersion".into(), revision.to_string().into());
    meta.insert("generation".into(), 1.into());
    meta.insert(
        "creationTimestamp".into(),
        rfc3339(SystemTime::now()).into(),
    );
    meta.insert("uid".into(), new_uid().into());
}

/// Stamps a replacement: identity and creation time carry over from `old`, and the
/// generation moves only when the spec changed (status or label edits keep it).
pub(super) fn stamp_replace(object: &mut Value, old: &Value, revision: u64) {
    let old_meta = old.get("metadata");
    let carried = |field: &str| old_meta.and_then(|m| m.get(field)).cloned();
    let old_generation = old_meta
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = if object.get("spec") == old.get("spec") {
        old_generation
    } else {
        old_generation + 1
    };
    let meta = meta_mut(object);
    meta.insert("resourceVersion".into(), revision.to_string().into());
    meta.insert("generation".into(), generation.into());
    for field in ["creationTimestamp", "uid"] {
        if let Some(v) = carried(field) {
            meta.insert(field.into(), v);
        }
    }
}

/// Sets only the resourceVersion (used for the last state carried by a delete event).
pub(super) fn set_revision(object: &mut Value, revision: u64) {
    meta_mut(object).insert("resourceVersion".into(), revision.to_string().into());
}

/// A random (version 4) UUID, as Kubernetes gives every object.
fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Formats a time as Kubernetes does: RFC 3339, UTC, whole seconds ("2024-05-01T12:00:00Z").
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras
/// (each era has exactly 146,097 days) so no calendar table is needed.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(leap_day), "2024-02-29T12:34:56Z");
        let new_year = UNIX_EPOCH + Duration::from_secs(946_684_799);
        assert_eq!(rfc3339(new_year), "1999-12-31T23:59:59Z");
    }

    #[test]
    fn uids_are_distinct_v4_uuids() {
        let a = new_uid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, new_uid());
    }

    #[test]
    fn replace_keeps_identity_and_bumps_generation_only_on_spec_change() {
        let mut first =
            json!({"kind": "VirtualService", "metadata": {"name": "r"}, "spec": {"hosts": ["a"]}});
        stamp_create(&mut first, 3);
        assert_eq!(resource_version(&first), Some(3));
        assert_eq!(first["metadata"]["generation"], 1);

        let mut relabeled = json!({"metadata": {"name": "r", "labels": {"x": "y"}, "uid": "forged"}, "spec": {"hosts": ["a"]}});
        stamp_replace(&mut relabeled, &first, 4);
        assert_eq!(relabeled["metadata"]["generation"], 1);
        assert_eq!(relabeled["metadata"]["uid"], first["metadata"]["uid"]);
        assert_eq!(resource_version(&relabeled), Some(4));

        let mut respec = json!({"metadata": {"name": "r"}, "spec": {"hosts": ["b"]}});
        stamp_replace(&mut respec, &relabeled, 5);
        assert_eq!(respec["metadata"]["generation"], 2);
        assert_eq!(
            respec["metadata"]["creationTimestamp"],
            first["metadata"]["creationTimestamp"]
        );
    }
}

//! `keys` output: what a key directory holds.

use serde_json::Value;
use vigil_control::KeysRotated;
use vigil_hw::keys::KeyMode;

/// The name operators see in key.json and the config (`tpm-sealed`).
pub fn mode_name(mode: KeyMode) -> &'static str {
    match mode {
        KeyMode::File => "file",
        KeyMode::TpmSealed => "tpm-sealed",
        KeyMode::TpmResident => "tpm-resident",
    }
}

fn mode_note(mode: &str) -> &'static str {
    match mode {
        "tpm-sealed" => "  (sealed by the TPM; signs in software)",
        "tpm-resident" => "  (inside the TPM; one TPM signature per handshake)",
        "file" => "  (PEM file on disk: not protected by the TPM)",
        _ => "",
    }
}

/// `keys show`: the key.json of a directory.
pub fn info(v: &Value) -> String {
    let mode = v["mode"].as_str().unwrap_or("?");
    let mut out = format!("mode:          {mode}{}\n", mode_note(mode));
    out.push_str(&format!(
        "fingerprint:   SHA-256 {}\n",
        v["spki_sha256"].as_str().unwrap_or("?")
    ));
    if let Some(c) = v["created"].as_u64() {
        out.push_str(&format!("created:       {}\n", utc(c)));
    }
    out.push_str(&format!(
        "subject:       {}\n",
        v["subject"].as_str().unwrap_or("(not made by Vigil)")
    ));
    let pcrs: Vec<String> = v["pcrs"]
        .as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    if !pcrs.is_empty() {
        out.push_str(&format!(
            "PCRs:          {} (SHA-256 bank)\n",
            pcrs.join(", ")
        ));
    }
    if let Some(key) = v["policy_key_sha256"].as_str() {
        out.push_str(&format!(
            "policy:        PCR values signed by the policy key SHA-256 {key} (keys.pcr_policy \
             names the signed policy)\n"
        ));
    }
    out
}

/// `keys policy sign|show`: what a signed PCR policy approves.
pub fn pcr_policy(v: &Value) -> String {
    let mut out = format!(
        "policy key:    SHA-256 {}  (ECC P-256; the signature verifies)\n",
        v["key_sha256"].as_str().unwrap_or("?")
    );
    out.push_str("PCRs:          (SHA-256 bank)\n");
    // JSON object keys sort as strings ("16" before "9"): order by index.
    let mut pcrs: Vec<(&String, &Value)> = v["pcrs"].as_object().into_iter().flatten().collect();
    pcrs.sort_by_key(|(pcr, _)| pcr.parse::<u8>().unwrap_or(u8::MAX));
    for (pcr, value) in pcrs {
        out.push_str(&format!("  {pcr:>2}  {}\n", value.as_str().unwrap_or("?")));
    }
    out.push_str(&format!(
        "policy digest: {}\n",
        v["policy_digest"].as_str().unwrap_or("?")
    ));
    out
}

fn files(v: &Value) -> String {
    let mut out = String::new();
    for f in v["files"].as_array().into_iter().flatten() {
        let f = f.as_str().unwrap_or("?");
        let note = if f.ends_with("/cert.pem") {
            "  (self-signed until you install a CA-issued chain)"
        } else {
            ""
        };
        out.push_str(&format!("  {f}{note}\n"));
    }
    out
}

/// `keys init`: the new key and the files written.
pub fn created(v: &Value) -> String {
    let dir = v["dir"].as_str().unwrap_or("?");
    let mut out = format!("created a new key in {dir}\n");
    out.push_str(&info(v));
    out.push_str("wrote:\n");
    out.push_str(&files(v));
    out.push_str(&format!(
        "next: have your CA sign {dir}/csr.pem and install the chain (leaf first) as \
         {dir}/cert.pem\n"
    ));
    out
}

/// `keys seal`: the sealed key.
pub fn sealed(v: &Value) -> String {
    let mut out = format!(
        "sealed {} into {}\n",
        v["sealed_from"].as_str().unwrap_or("?"),
        v["dir"].as_str().unwrap_or("?")
    );
    out.push_str(&info(v));
    out.push_str("files:\n");
    out.push_str(&files(v));
    out.push_str(
        "next: install the key's chain as cert.pem if it is not there, check that vigild \
         loads the sealed key, then delete the PEM file\n",
    );
    out
}

/// `keys rotate`: vigild's answer.
pub fn rotated(r: &KeysRotated) -> String {
    let mode = match r.mode {
        vigil_control::reply::KeyMode::File => "file",
        vigil_control::reply::KeyMode::TpmSealed => "tpm-sealed",
        vigil_control::reply::KeyMode::TpmResident => "tpm-resident",
    };
    format!(
        "rotated: vigild serves the {mode} key to new handshakes; established connections keep \
         the old one\n"
    )
}

/// Unix seconds as `2026-11-23 15:22:10 UTC`.
pub fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn unix_seconds_format_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_447_330), "2026-11-23 15:22:10 UTC");
    }

    #[test]
    fn info_shows_pcrs_only_for_sealed_keys() {
        let v = serde_json::json!({
            "mode": "tpm-sealed", "spki_sha256": "ab", "created": 0,
            "subject": "gw.example", "pcrs": [7, 16]
        });
        let out = info(&v);
        assert!(out.contains("PCRs:          7, 16 (SHA-256 bank)"), "{out}");
        assert!(out.contains("SHA-256 ab"), "{out}");
        let v = serde_json::json!({
            "mode": "tpm-resident", "spki_sha256": "ab", "created": 0,
            "subject": null, "pcrs": []
        });
        assert!(!info(&v).contains("PCRs"));
        let v = serde_json::json!({
            "mode": "tpm-sealed", "spki_sha256": "ab", "created": 0,
            "subject": null, "pcrs": [], "policy_key_sha256": "cd"
        });
        let out = info(&v);
        assert!(!out.contains("PCRs"), "{out}");
        assert!(out.contains("signed by the policy key SHA-256 cd"), "{out}");
    }

    #[test]
    fn pcr_policies_list_pcrs_in_index_order() {
        let v = serde_json::json!({
            "key_sha256": "ab", "policy_digest": "cd",
            "pcrs": {"16": "01", "9": "02"}
        });
        let out = pcr_policy(&v);
        let (nine, sixteen) = (out.find(" 9  02").unwrap(), out.find("16  01").unwrap());
        assert!(nine < sixteen, "{out}");
    }
}

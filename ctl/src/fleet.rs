//! `vigilctl fleet keygen|pubkey`: a box's Ed25519 signing key for the fleet blocklist, made
//! and read offline (vigild need not run).

use anyhow::anyhow;
use vigil_control::fleet_key::{SigningKey, check_box_id};

use crate::cli::FleetCmd;
use crate::exit::usage;

pub fn run(cmd: &FleetCmd, json: bool) -> anyhow::Result<String> {
    let (box_id, key, path, created) = match cmd {
        FleetCmd::Keygen { box_id, out, force } => {
            check_box_id(box_id).map_err(|e| usage(format!("--box: {e}")))?;
            let key = SigningKey::create(out, *force).map_err(|e| match e {
                vigil_control::fleet_key::FleetKeyError::Write { ref error, .. }
                    if error.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    usage(format!(
                        "{} exists; pass --force to replace it (every box must then list the \
                         new public key)",
                        out.display()
                    ))
                }
                other => anyhow!(other),
            })?;
            (Some(box_id.clone()), key, out, true)
        }
        FleetCmd::Pubkey { key, box_id } => {
            if let Some(b) = box_id {
                check_box_id(b).map_err(|e| usage(format!("--box: {e}")))?;
            }
            (box_id.clone(), SigningKey::load(key)?, key, false)
        }
    };
    let public = key.public().to_string();
    if json {
        return Ok(serde_json::json!({
            "box": box_id,
            "public_key": public,
            "key_file": path,
            "created": created,
        })
        .to_string()
            + "\n");
    }
    let name = box_id.as_deref().unwrap_or("<box>");
    let mut out = String::new();
    if created {
        out.push_str(&format!(
            "wrote {} (mode 0600); set fleet.signing_key to it and fleet.box_id = \"{name}\"\n",
            path.display()
        ));
        out.push_str("add this line under [fleet.boxes] on every box of the fleet:\n");
    }
    out.push_str(&format!("{name} = \"{public}\"\n"));
    Ok(out)
}

//! The API client of a node: from IVORY_CLIENT_ID / IVORY_CLIENT_SECRET, else the data directory,
//! else generated once, stored, and printed with a ready-to-paste curl line.

use std::net::SocketAddr;
use std::path::Path;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

impl Credentials {
    /// Nodes that share the client secret accept each other's tokens: the signing key is derived
    /// from it, so a token from any node is good on every node of the cluster.
    pub fn gateway_config(&self) -> ivory_gateway::GatewayConfig {
        let signing_key = Sha256::digest(format!("ivory token signing v1\n{}", self.client_secret)).to_vec();
        ivory_gateway::GatewayConfig::new(self.client_id.clone(), self.client_secret.clone(), signing_key)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn load_or_create(data: &Path, listen: SocketAddr) -> Result<Credentials, String> {
    if let (Ok(client_id), Ok(client_secret)) = (std::env::var("IVORY_CLIENT_ID"), std::env::var("IVORY_CLIENT_SECRET"))
    {
        if client_id.is_empty() || client_secret.len() < 16 {
            return Err("IVORY_CLIENT_ID must be set and IVORY_CLIENT_SECRET at least 16 characters".into());
        }
        return Ok(Credentials {
            client_id,
            client_secret,
        });
    }
    let path = data.join("credentials.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            crate::secret::check_private(&path)?;
            serde_json::from_str(&text).map_err(|e| format!("{} is not valid: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let created = Credentials {
                client_id: format!("ivory-{}", random_hex(4)),
                client_secret: random_hex(24),
            };
            let text = serde_json::to_string_pretty(&created).map_err(|e| e.to_string())?;
            // 0600 from creation: never readable by others, not even for a moment.
            crate::secret::create_private(&path, &text)?;
            println!(
                "ivory: created the API client (kept in {path}; set IVORY_CLIENT_ID/IVORY_CLIENT_SECRET to choose your own)\n\
                 \x20 client_id={id}\n  client_secret={secret}\n\
                 \x20 get a token for environment 'demo':\n\
                 \x20 curl -s -X POST http://{listen}/token -H 'Content-Type: application/json' \
                 -d '{{\"grant_type\":\"client_credentials\",\"client_id\":\"{id}\",\"client_secret\":\"{secret}\",\"context\":\"demo\"}}'",
                path = path.display(),
                id = created.client_id,
                secret = created.client_secret,
            );
            Ok(created)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

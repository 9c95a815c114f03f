//! Everything the checks and the planner read about a cluster, as one
//! serializable value: `plan --save-facts` writes it, `--from-facts` reads
//! it back, and the simulator produces it.

use std::collections::BTreeMap;

use crate::facts::model::Facts;
use crate::version::resolve::{Resolution, ResolveError};

/// Facts and resolutions: everything the checks and the planner read.
/// Serializable, so a cluster can be captured once and planned offline.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Gathered {
    pub facts: Facts,
    /// Per swarm node ID.
    #[serde(with = "resolutions_serde")]
    pub resolutions: BTreeMap<String, Result<Resolution, ResolveError>>,
}

/// `Result` as `{"ok": ...}` / `{"err": ...}` in JSON.
mod resolutions_serde {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::version::resolve::{Resolution, ResolveError};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Entry {
        Ok(Resolution),
        Err(ResolveError),
    }

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Result<Resolution, ResolveError>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&String, Entry> = map
            .iter()
            .map(|(k, v)| {
                let e = match v {
                    Ok(r) => Entry::Ok(r.clone()),
                    Err(e) => Entry::Err(e.clone()),
                };
                (k, e)
            })
            .collect();
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Result<Resolution, ResolveError>>, D::Error> {
        let m = BTreeMap::<String, Entry>::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(k, e)| {
                let v = match e {
                    Entry::Ok(r) => Ok(r),
                    Entry::Err(e) => Err(e),
                };
                (k, v)
            })
            .collect())
    }
}

//! Every contract confab speaks, one folder each. A contract is its event
//! table (its module doc), its payload types and its renderers, built from
//! the toolkit in [`crate::contract`]; nothing outside this folder names
//! one.

use crate::contract::Contract;

pub mod dreamstudio;
pub mod hvtsocial;
pub mod mern;
pub mod raven;
pub mod v3;

/// Every contract confab speaks.
pub static ALL: [Contract; 5] = [
    raven::CONTRACT,
    mern::CONTRACT,
    v3::CONTRACT,
    hvtsocial::CONTRACT,
    dreamstudio::CONTRACT,
];

/// The contract called `name`.
pub fn by_name(name: &str) -> Option<&'static Contract> {
    ALL.iter().find(|c| c.name == name)
}

/// The contract called `name`, or an error that lists the known ones.
pub fn named(name: &str) -> anyhow::Result<&'static Contract> {
    by_name(name).ok_or_else(|| {
        let known: Vec<&str> = ALL.iter().map(|c| c.name).collect();
        anyhow::anyhow!(
            "unknown default contract {name:?}; known: {}",
            known.join(", ")
        )
    })
}

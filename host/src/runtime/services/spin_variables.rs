//! `spin:variables/variables@3.0.0` (what `spin-sdk` 7 components import):
//! a component's variables are its version's config values and its
//! function's secrets, as `wasi:config` reads them (`config.rs`).
//!
//! A `spin.toml`'s variables become those values at deploy (`wisp up`); a
//! name Spin would refuse (not lowercase letters, digits and underscores
//! from a letter) is `invalid-name`, one the function lacks `undefined`.

use super::config::{ConfigData, ConfigScope};
use wasmtime::component::{Accessor, Linker};

mod generated {
    wasmtime::component::bindgen!({
        inline: "
            package wisp:spin-variables;
            world imports { import spin:variables/variables@3.0.0; }
        ",
        path: "../wit/spin-variables-3.0.0",
        imports: { default: trappable },
    });
}

use generated::spin::variables::variables::{self as wit, Error};

/// Links the interface.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> &ConfigScope,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, ConfigData>(linker, view)
}

/// Whether Spin accepts `name` as a variable's name.
fn spin_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl wit::Host for &ConfigScope {}

/// Why Spin's `variables.get` has no value for a name; each version of
/// the interface spells these in its own error type.
pub(super) enum Unanswered {
    /// Not a name Spin accepts.
    InvalidName(String),
    /// The function has no such variable.
    Undefined(String),
    /// Reading it failed.
    Provider(String),
}

/// Spin's `variables.get`: the value of `name` among `scope`'s.
pub(super) fn lookup(scope: &ConfigScope, name: String) -> Result<String, Unanswered> {
    if !spin_name(&name) {
        return Err(Unanswered::InvalidName(name));
    }
    match scope.get(&name) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(Unanswered::Undefined(name)),
        Err(why) => Err(Unanswered::Provider(why)),
    }
}

impl<U: 'static> wit::HostWithStore<U> for ConfigData {
    async fn get(
        accessor: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(accessor.with(|mut access| {
            lookup(access.get(), name).map_err(|unanswered| match unanswered {
                Unanswered::InvalidName(name) => Error::InvalidName(name),
                Unanswered::Undefined(name) => Error::Undefined(name),
                Unanswered::Provider(why) => Error::Provider(why),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::spin_name;

    #[test]
    fn variable_names_follow_spins_rule() {
        for good in ["greeting", "api_key", "v2"] {
            assert!(spin_name(good), "{good}");
        }
        for bad in ["", "Greeting", "2fa", "_x", "api-key", "api.key"] {
            assert!(!spin_name(bad), "{bad}");
        }
    }
}

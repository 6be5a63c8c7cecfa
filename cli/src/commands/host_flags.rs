//! `wisp serve`'s host settings as flags, made from the host-wide settings
//! tables (`wisp_host::HOST_SETTINGS`, `wisp_host::SERVER_SETTINGS`): a
//! setting declared there is a flag here, with its help, placeholder and
//! default, checked as it is parsed.

use clap::builder::ValueParser;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use wisp_host::{Form, HOST_SETTINGS, HostConfig, HostSetting, SERVER_SETTINGS, ServerOptions};

/// The host settings given on the command line, as typed (checked).
#[derive(Debug, Clone, Default)]
pub(crate) struct HostArgs {
    given: Vec<(&'static str, String)>,
}

impl HostArgs {
    /// Fills `config` and `options` with the settings given; the rest keep
    /// what they hold.
    pub(crate) fn apply(
        &self,
        config: &mut HostConfig,
        options: &mut ServerOptions,
    ) -> anyhow::Result<()> {
        for (flag, value) in &self.given {
            let result = if let Some(setting) = find(HOST_SETTINGS, flag) {
                (setting.set)(config, value)
            } else if let Some(setting) = find(SERVER_SETTINGS, flag) {
                (setting.set)(options, value)
            } else {
                Err("no such setting".to_owned())
            };
            result.map_err(|e| anyhow::anyhow!("invalid value `{value}` for `--{flag}`: {e}"))?;
        }
        Ok(())
    }
}

fn find<T>(table: &'static [HostSetting<T>], flag: &str) -> Option<&'static HostSetting<T>> {
    table.iter().find(|setting| setting.flag == flag)
}

/// The flag of one setting: its value is checked by the setting itself,
/// against `T::default()`, so a bad one is a usage error naming the flag.
fn flag<T: Default + 'static>(setting: &'static HostSetting<T>) -> Arg {
    let help = format!("{} [default: {}]", setting.help, setting.default_text());
    let arg = Arg::new(setting.flag).long(setting.flag).help(help);
    match setting.form {
        Form::Switch => arg.action(ArgAction::SetTrue),
        Form::One | Form::Repeated => arg
            .value_name(setting.value_name)
            .value_parser(ValueParser::new(move |text: &str| {
                (setting.set)(&mut T::default(), text).map(|()| text.to_owned())
            }))
            .action(if setting.form == Form::Repeated {
                ArgAction::Append
            } else {
                ArgAction::Set
            }),
    }
}

impl Args for HostArgs {
    fn augment_args(command: Command) -> Command {
        let command = HOST_SETTINGS
            .iter()
            .fold(command, |command, setting| command.arg(flag(setting)));
        SERVER_SETTINGS
            .iter()
            .fold(command, |command, setting| command.arg(flag(setting)))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

/// The settings of `table` given in `matches`, as text (a switch given is
/// `"true"`).
fn collect<T>(
    table: &'static [HostSetting<T>],
    matches: &ArgMatches,
    given: &mut Vec<(&'static str, String)>,
) {
    for setting in table {
        match setting.form {
            Form::Switch if matches.get_flag(setting.flag) => {
                given.push((setting.flag, "true".to_owned()));
            }
            Form::Switch => {}
            Form::One | Form::Repeated => {
                if let Some(values) = matches.get_many::<String>(setting.flag) {
                    given.extend(values.map(|value| (setting.flag, value.clone())));
                }
            }
        }
    }
}

impl FromArgMatches for HostArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        collect(HOST_SETTINGS, matches, &mut given);
        collect(SERVER_SETTINGS, matches, &mut given);
        Ok(HostArgs { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        host: HostArgs,
    }

    fn parse(args: &[&str]) -> Result<(HostConfig, ServerOptions), String> {
        let flags = Flags::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let mut config = HostConfig::default();
        let mut options = ServerOptions::default();
        flags
            .host
            .apply(&mut config, &mut options)
            .map_err(|e| e.to_string())?;
        Ok((config, options))
    }

    #[test]
    fn every_setting_of_both_tables_is_a_flag_that_fills_its_field() {
        let (config, options) = parse(&[
            "--max-upload",
            "3MiB",
            "--body-timeout",
            "2s",
            "--dir-root",
            "/a",
            "--dir-root",
            "/b",
            "--allow-root-dir",
            "--access-log",
            "false",
            "--header-timeout",
            "4s",
        ])
        .unwrap();
        assert_eq!(config.max_upload, 3 << 20);
        assert_eq!(config.body_timeout, Duration::from_secs(2));
        assert_eq!(config.dir_roots.len(), 2);
        assert!(config.allow_root_dir);
        assert!(!config.access_log);
        assert_eq!(options.header_timeout, Duration::from_secs(4));
        let help = {
            use clap::CommandFactory;
            Flags::command().render_long_help().to_string()
        };
        let flags = HOST_SETTINGS
            .iter()
            .map(|s| s.flag)
            .chain(SERVER_SETTINGS.iter().map(|s| s.flag));
        for flag in flags {
            assert!(help.contains(&format!("--{flag}")), "{flag}");
        }
        assert!(help.contains("[default: 200MiB]"), "{help}");
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_flag_and_what_was_expected() {
        let err = parse(&["--max-instances", "0"]).unwrap_err();
        assert!(
            err.contains("--max-instances") && err.contains("at least 1"),
            "{err}"
        );
        let err = parse(&["--call-retention", "forever"]).unwrap_err();
        assert!(
            err.contains("--call-retention") && err.contains("unit"),
            "{err}"
        );
    }
}

//! `wisp deploy`'s flags: `--route`, and one flag per deploy setting, made
//! from the settings table (`wisp_spec::settings::SETTINGS`), so a setting
//! declared there is a flag here with its help, placeholder and default.

use anyhow::bail;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use std::path::PathBuf;
use wisp_spec::settings::{RawSettings, SETTINGS};

/// The route and settings of one deploy, as flags.
#[derive(Debug, Clone)]
pub(crate) struct SettingsArgs {
    /// The path prefix the function serves; `None` keeps the function's.
    pub(crate) route: Option<String>,
    /// The settings given, as typed.
    given: Vec<(&'static str, String)>,
}

impl SettingsArgs {
    /// The raw settings, checked here so a bad flag is reported before
    /// anything is sent. Host directories are made absolute.
    pub(crate) fn to_raw(&self) -> anyhow::Result<RawSettings> {
        let mut raw = RawSettings::new();
        for (name, value) in &self.given {
            let value = match (*name, value.rsplit_once(':')) {
                ("dir", Some((host, guest))) => {
                    let host = std::path::absolute(host).unwrap_or_else(|_| PathBuf::from(host));
                    format!("{}:{guest}", host.display())
                }
                _ => value.clone(),
            };
            raw.set(name, value)?;
        }
        if let Err(e) = raw.check() {
            bail!("{}", e.as_flag_message());
        }
        Ok(raw)
    }
}

impl Args for SettingsArgs {
    fn augment_args(command: Command) -> Command {
        let route = Arg::new("route")
            .long("route")
            .value_name("PREFIX")
            .help("Path prefix the function serves, e.g. `/hello`: needed to create a function; later deploys keep it, and another one needs `--move-route`");
        SETTINGS
            .iter()
            .fold(command.arg(route), |command, setting| {
                let help = if setting.repeatable() {
                    setting.help.to_owned()
                } else {
                    format!("{} (default {})", setting.help, setting.default)
                };
                command.arg(
                    Arg::new(setting.name)
                        .long(setting.name)
                        .value_name(setting.value_name)
                        .help(help)
                        .action(if setting.repeatable() {
                            ArgAction::Append
                        } else {
                            ArgAction::Set
                        }),
                )
            })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let route = matches.get_one::<String>("route").cloned();
        let mut given = Vec::new();
        for setting in SETTINGS {
            if let Some(values) = matches.get_many::<String>(setting.name) {
                given.extend(values.map(|v| (setting.name, v.clone())));
            }
        }
        Ok(SettingsArgs { route, given })
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

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    #[test]
    fn every_setting_of_the_table_is_a_flag() {
        let flags = Flags::try_parse_from([
            "deploy", "--route", "/a", "--memory", "64MiB", "--env", "A=1", "--env", "B=2",
            "--fuel", "10",
        ])
        .unwrap();
        assert_eq!(flags.settings.route.as_deref(), Some("/a"));
        let raw = flags.settings.to_raw().unwrap();
        assert_eq!(raw.get("memory"), ["64MiB"]);
        assert_eq!(raw.get("env").len(), 2);
        let help = Flags::command_for_help();
        for setting in SETTINGS {
            assert!(
                help.contains(&format!("--{}", setting.name)),
                "{}",
                setting.name
            );
        }
    }

    #[test]
    fn a_bad_flag_value_names_the_flag() {
        let flags = Flags::try_parse_from(["deploy", "--route", "/a", "--memory", "lots"]).unwrap();
        let err = flags.settings.to_raw().unwrap_err().to_string();
        assert!(
            err.contains("`--memory`") && err.contains("`lots`"),
            "{err}"
        );
    }

    #[test]
    fn the_readme_settings_table_is_the_settings_table() {
        let readme = include_str!("../../../README.md");
        let table = wisp_spec::settings::table::markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's settings table is out of date; replace it with:\n{table}"
        );
    }

    impl Flags {
        fn command_for_help() -> String {
            use clap::CommandFactory;
            Flags::command().render_long_help().to_string()
        }
    }
}

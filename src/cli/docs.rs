//! `swarm-upgrade completions SHELL` and `swarm-upgrade man`: generated from
//! the command line definition itself, so they never drift from it.

use clap::CommandFactory;

use super::{Cli, CompletionsArgs};
use crate::exit_code;

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut cmd,
        "swarm-upgrade",
        &mut std::io::stdout(),
    );
    Ok(exit_code::SUCCESS)
}

/// The man page: the top command and, as sections, every subcommand.
pub fn man() -> anyhow::Result<u8> {
    use std::io::Write;
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = clap_mangen::Man::new(sub.clone());
        // Each subcommand under its own heading, with its options and examples.
        writeln!(
            out,
            ".SH \"SWARM-UPGRADE {}\"",
            sub.get_name().to_uppercase()
        )?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        man.render_extra_section(&mut out)?;
    }
    std::io::stdout().write_all(&out)?;
    Ok(exit_code::SUCCESS)
}

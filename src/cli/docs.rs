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

/// Text for roff: backslashes and hyphens escaped, no line taken for a
/// request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The man page: the top command and, as sections, every subcommand. One
/// page: the SUBCOMMANDS list points to those sections (clap_mangen's own
/// list names a page per subcommand, which is not installed).
pub fn man() -> anyhow::Result<u8> {
    use std::io::Write;
    let cmd = Cli::command();
    let mut out = Vec::new();
    let top = clap_mangen::Man::new(cmd.clone());
    top.render_title(&mut out)?;
    top.render_name_section(&mut out)?;
    top.render_synopsis_section(&mut out)?;
    top.render_description_section(&mut out)?;
    top.render_options_section(&mut out)?;
    writeln!(out, ".SH SUBCOMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        writeln!(
            out,
            ".TP\n\\fBswarm\\-upgrade {}\\fR\n{} (section SWARM\\-UPGRADE {})",
            roff(sub.get_name()),
            roff(&about),
            roff(&sub.get_name().to_uppercase())
        )?;
    }
    top.render_extra_section(&mut out)?;
    top.render_version_section(&mut out)?;
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

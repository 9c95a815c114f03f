use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(swarm_upgrade::run(std::env::args_os()))
}

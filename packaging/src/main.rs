//! gen-assets: writes the files of the Debian package that are made from the code, so that they
//! never drift from it and are never committed: a man page per command and subcommand and the
//! bash, zsh and fish completions of both binaries (from their clap definitions, the same
//! `command()` their `main` parses with), and the example `/etc/flume-watchdog/watcher.toml` (the
//! text `flume-watcher config example` prints).
//!
//! `gen-assets DIR` writes `DIR/man/*.1`, `DIR/completions/{bash,zsh,fish}/*` and
//! `DIR/watcher.toml`, replacing what an earlier run left there. `scripts/package` runs it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap_complete::Shell;

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        bail!("usage: gen-assets DIR");
    };
    let dir = PathBuf::from(dir);
    // What an earlier run wrote, so that a command removed since leaves no page behind.
    for sub in ["man", "completions"] {
        let path = dir.join(sub);
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    for cmd in [watchdog::cli::command(), watcher::cli::command()] {
        man_pages(cmd.clone(), &dir.join("man"))?;
        completions(cmd, &dir.join("completions"))?;
    }
    write(
        &dir.join("watcher.toml"),
        watcher::config::EXAMPLE.as_bytes(),
    )?;
    Ok(())
}

/// One page for the command and one for each subcommand, nested ones included
/// (`flume-watcher-config-check.1`), as `man flume-watcher-run` expects.
fn man_pages(cmd: clap::Command, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write the man pages to {}", dir.display()))
}

/// Named as each shell's completion directory wants them: the command's name for bash
/// (`/usr/share/bash-completion/completions/flume-watcher`, loaded on first use), `_name` for
/// zsh, `name.fish` for fish.
fn completions(mut cmd: clap::Command, dir: &Path) -> Result<()> {
    let name = cmd.get_name().to_owned();
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut text);
        write(&dir.join(shell.to_string()).join(file), &text)?;
    }
    Ok(())
}

fn write(path: &Path, content: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
}

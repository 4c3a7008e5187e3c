//! The Debian package as an operator meets it: `scripts/package` builds one .deb (here from the
//! binaries the test build made, profile dev, so that no second build of the workspace is
//! needed; the same assets, scripts and cargo-deb as a release), and it holds both binaries,
//! which run, the units at systemd's path, which verify against the package's own tree, the
//! configuration files as conffiles, the example watcher.toml that `config example` prints, man
//! pages and completions for every command, and maintainer scripts that create the flume user
//! once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use scenarios::tools::{repo_root, require, run, systemd_root, verify_units, Ran};
use scenarios::{bin, deadline, TempDir};

/// The .deb, built once for every test of this file, and its tree unpacked with `dpkg -x`.
struct Package {
    deb: PathBuf,
    tree: PathBuf,
    _dir: TempDir,
}

/// Removes what `scripts/package` generated into the target directory, whatever happens.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        require(
            "cargo-deb",
            "cargo install cargo-deb --version 3.8.0 --locked",
        );
        require("dpkg-deb", "apt-get install dpkg");
        // The test build's binaries: target/<profile dir>/, "debug" for the dev profile.
        let profile_dir = bin("flume-watchdog").parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap().to_path_buf();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev".to_owned(),
            other => other.to_owned(),
        };
        let _generated = RemoveOnDrop(profile_dir.join("packaging-assets"));
        let dir = TempDir::new("deb");
        let out = dir.join("out");
        let mut cmd = Command::new(repo_root().join("scripts/package"));
        cmd.args(["--profile", &profile, "--no-build", "--out"])
            .arg(&out)
            // --fast: a quicker, larger compression; the content is the same.
            .args(["--", "--fast"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(repo_root());
        let started = Instant::now();
        run(cmd, "scripts/package", deadline(300)).ok("scripts/package");
        eprintln!("scripts/package took {:.1?}", started.elapsed());
        let debs: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        let [deb] = debs.as_slice() else {
            panic!("scripts/package made {debs:?}, expected one .deb");
        };
        assert!(
            deb.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("flume-watchdog_"),
            "{}",
            deb.display()
        );
        let tree = dir.join("tree");
        dpkg_deb(&["-x"], deb, Some(&tree));
        Package {
            deb: deb.clone(),
            tree,
            _dir: dir,
        }
    })
}

fn dpkg_deb(args: &[&str], deb: &Path, dir: Option<&Path>) -> Ran {
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(args).arg(deb);
    if let Some(dir) = dir {
        cmd.arg(dir);
    }
    run(cmd, &format!("dpkg-deb {args:?}"), deadline(60)).ok("dpkg-deb")
}

/// `dpkg-deb -c`: each file's path (without the leading `.`) and mode, directories left out.
fn listing() -> Vec<(String, String)> {
    dpkg_deb(&["-c"], &package().deb, None)
        .stdout
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.last().unwrap().trim_start_matches('.').to_owned();
            (path, fields[0].to_owned())
        })
        .collect()
}

const MAN_PAGES: &[&str] = &[
    "flume-watchdog",
    "flume-watchdog-run",
    "flume-watchdog-stop",
    "flume-watcher",
    "flume-watcher-run",
    "flume-watcher-status",
    "flume-watcher-config",
    "flume-watcher-config-check",
    "flume-watcher-config-example",
    "flume-watcher-test-alert",
    "flume-watcher-silence",
    "flume-watcher-silence-add",
    "flume-watcher-silence-list",
    "flume-watcher-silence-remove",
];

const CONFFILES: &[&str] = &[
    "/etc/flume-watchdog/flume-watchdog.env",
    "/etc/flume-watchdog/flume-watcher.env",
    "/etc/flume-watchdog/watcher.toml",
];

/// Exactly these files, nothing missing and nothing stray.
#[test]
fn the_deb_holds_binaries_units_configuration_docs_and_completions() {
    let mut expected: BTreeSet<String> = [
        "/usr/bin/flume-watchdog",
        "/usr/bin/flume-watcher",
        "/lib/systemd/system/flume-watchdog@.service",
        "/lib/systemd/system/flume-watcher.service",
        "/usr/share/doc/flume-watchdog/README.md",
        "/usr/share/doc/flume-watchdog/copyright",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    expected.extend(CONFFILES.iter().map(|s| s.to_string()));
    for name in ["flume-watchdog", "flume-watcher"] {
        expected.insert(format!("/usr/share/bash-completion/completions/{name}"));
        expected.insert(format!("/usr/share/zsh/vendor-completions/_{name}"));
        expected.insert(format!("/usr/share/fish/vendor_completions.d/{name}.fish"));
    }
    expected.extend(
        MAN_PAGES
            .iter()
            .map(|p| format!("/usr/share/man/man1/{p}.1.gz")),
    );
    let files = listing();
    let found: BTreeSet<String> = files.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        found.symmetric_difference(&expected).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "files in the .deb (left: missing or stray); all:\n{found:#?}"
    );
    let mode = |path: &str| files.iter().find(|(p, _)| p == path).unwrap().1.clone();
    for b in ["/usr/bin/flume-watchdog", "/usr/bin/flume-watcher"] {
        assert_eq!(mode(b), "-rwxr-xr-x", "{b}");
    }
    // Robot tokens, signing secrets, SMTP passwords: root only.
    for secret in [
        "/etc/flume-watchdog/flume-watcher.env",
        "/etc/flume-watchdog/watcher.toml",
    ] {
        assert_eq!(mode(secret), "-rw-------", "{secret}");
    }
}

#[test]
fn configuration_files_are_conffiles() {
    let dir = TempDir::new("control");
    dpkg_deb(&["-e"], &package().deb, Some(dir.path()));
    let conffiles = std::fs::read_to_string(dir.join("conffiles")).expect("a conffiles file");
    let listed: BTreeSet<&str> = conffiles.lines().map(str::trim).collect();
    assert_eq!(listed, CONFFILES.iter().copied().collect(), "{conffiles}");
    let control = std::fs::read_to_string(dir.join("control")).unwrap();
    assert!(control.contains("Package: flume-watchdog\n"), "{control}");
    let depends = control
        .lines()
        .find(|l| l.starts_with("Depends:"))
        .unwrap_or_else(|| panic!("no Depends:\n{control}"));
    assert!(
        depends.contains("adduser"),
        "postinst uses adduser: {depends}"
    );
}

#[test]
fn packaged_binaries_run() {
    let version = env!("CARGO_PKG_VERSION");
    for name in ["flume-watchdog", "flume-watcher"] {
        let mut cmd = Command::new(package().tree.join("usr/bin").join(name));
        cmd.arg("--version");
        let ran = run(cmd, &format!("{name} --version"), deadline(20)).ok(name);
        assert_eq!(ran.stdout.trim(), format!("{name} {version}"));
    }
}

/// The packaged example is what the packaged binary prints, and it passes its own check.
#[test]
fn packaged_watcher_toml_is_config_example_and_passes_config_check() {
    let tree = &package().tree;
    let watcher = tree.join("usr/bin/flume-watcher");
    let toml = tree.join("etc/flume-watchdog/watcher.toml");
    let mut example = Command::new(&watcher);
    example.args(["config", "example"]);
    let example = run(example, "config example", deadline(20)).ok("config example");
    assert_eq!(std::fs::read_to_string(&toml).unwrap(), example.stdout);
    let mut check = Command::new(&watcher);
    check.args(["config", "check", "--config"]).arg(&toml);
    run(check, "config check", deadline(20)).ok("config check of the packaged watcher.toml");
}

#[test]
fn man_pages_and_completions_cover_every_command() {
    let tree = &package().tree;
    for page in MAN_PAGES {
        let mut zcat = Command::new("gzip");
        zcat.arg("-dc")
            .arg(tree.join(format!("usr/share/man/man1/{page}.1.gz")));
        let text = run(zcat, "gzip -dc", deadline(20)).ok(page).stdout;
        assert!(
            text.contains(&format!(".TH {page} 1")),
            "{page}.1 is not a man page for {page}:\n{text}"
        );
    }
    let bash = require("bash", "apt-get install bash");
    for (name, subcommands) in [
        ("flume-watchdog", &["run", "stop"][..]),
        (
            "flume-watcher",
            &["run", "status", "config", "test-alert", "silence"][..],
        ),
    ] {
        let b = tree
            .join("usr/share/bash-completion/completions")
            .join(name);
        let mut syntax = Command::new(&bash);
        syntax.arg("-n").arg(&b);
        run(syntax, "bash -n", deadline(20)).ok(&format!("bash -n {}", b.display()));
        // What bash offers after `NAME ` (the completion function run as bash-completion would).
        let mut offer = Command::new(&bash);
        offer.arg("-c").arg(format!(
            "source '{}'; COMP_WORDS=({name} ''); COMP_CWORD=1; COMP_LINE='{name} '; COMP_POINT=${{#COMP_LINE}}; \
             _{func} {name} '' {name}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            b.display(),
            func = name.replace('-', "__")
        ));
        let offered = run(offer, "bash completion", deadline(20)).ok("bash completion");
        let offered: BTreeSet<&str> = offered.stdout.lines().collect();
        for sub in subcommands {
            assert!(
                offered.contains(sub),
                "bash offers {offered:?} after `{name} `, not {sub}"
            );
        }
        let zsh = std::fs::read_to_string(
            tree.join("usr/share/zsh/vendor-completions")
                .join(format!("_{name}")),
        )
        .unwrap();
        assert!(
            zsh.starts_with(&format!("#compdef {name}")),
            "zsh completion of {name}"
        );
        let fish = std::fs::read_to_string(
            tree.join("usr/share/fish/vendor_completions.d")
                .join(format!("{name}.fish")),
        )
        .unwrap();
        for sub in subcommands {
            assert!(
                fish.lines()
                    .any(|l| l.starts_with(&format!("complete -c {name}"))
                        && l.contains(&format!("-a \"{sub}\""))),
                "fish completion of {name} lacks {sub}"
            );
        }
    }
}

/// The units as installed verify against the package's own tree: the binaries they run are at
/// the paths they name.
#[test]
fn packaged_units_verify_against_the_packaged_tree() {
    let root = TempDir::new("deb-root");
    let mut cp = Command::new("cp");
    cp.arg("-a")
        .arg(format!("{}/.", package().tree.display()))
        .arg(root.path());
    run(cp, "copying the package's tree", deadline(60)).ok("cp");
    systemd_root(root.path());
    let problems = verify_units(
        root.path(),
        &["flume-watcher.service", "flume-watchdog@a1.service"],
    );
    assert!(
        problems.is_empty(),
        "systemd-analyze verify:\n{}",
        problems.join("\n")
    );
}

/// postinst run twice, as dpkg does on install and again on an upgrade, with stand-ins for the
/// commands it calls (this test does not run as root on the machine's user database): the group
/// and the user are created the first time only, with the home the units use, and nothing fails.
#[test]
fn postinst_creates_the_flume_user_once() {
    let dir = TempDir::new("postinst");
    let control = dir.join("control");
    dpkg_deb(&["-e"], &package().deb, Some(&control));
    for script in ["postinst", "prerm", "postrm"] {
        let mut syntax = Command::new("sh");
        syntax.arg("-n").arg(control.join(script));
        run(syntax, "sh -n", deadline(20)).ok(&format!("sh -n {script}"));
    }
    // Stand-ins: getent answers from the files the stand-in adduser and addgroup write; every
    // call is logged.
    let stubs = dir.join("bin");
    std::fs::create_dir_all(&stubs).unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let log = dir.join("calls");
    let stub = |name: &str, body: &str| {
        let path = stubs.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
                log.display()
            ),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
    };
    let st = state.display();
    stub("getent", &format!("test -f '{st}'/\"$1.$2\""));
    stub(
        "addgroup",
        &format!("for a; do last=$a; done; touch '{st}/group.'$last"),
    );
    stub(
        "adduser",
        &format!("for a; do last=$a; done; touch '{st}/passwd.'$last"),
    );
    stub("systemctl", "exit 0");
    let path = format!("{}:/usr/bin:/bin", stubs.display());
    let run_postinst = |round: &str| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(control.join("postinst"))
            .args(["configure", ""])
            .env("PATH", &path);
        run(cmd, "postinst configure", deadline(20)).ok(&format!("postinst configure ({round})"));
        std::fs::read_to_string(&log).unwrap_or_default()
    };
    let first = run_postinst("first install");
    let adds: Vec<&str> = first.lines().filter(|l| l.starts_with("add")).collect();
    assert_eq!(adds.len(), 2, "one group and one user:\n{first}");
    assert!(
        adds[0].starts_with("addgroup --system") && adds[0].ends_with(" flume"),
        "{first}"
    );
    let user = adds[1];
    for part in [
        "adduser --system",
        "--ingroup flume",
        "--home /var/lib/flume",
        "--no-create-home",
        " flume",
    ] {
        assert!(user.contains(part), "`{user}` lacks `{part}`");
    }
    assert!(state.join("passwd.flume").exists() && state.join("group.flume").exists());
    std::fs::remove_file(&log).unwrap();
    let second = run_postinst("upgrade");
    assert!(
        !second.lines().any(|l| l.starts_with("add")),
        "the second run created again:\n{second}"
    );
    assert!(second.contains("getent passwd flume"), "{second}");
}

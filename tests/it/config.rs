//! Configuration through the real binary: invalid values exit 2 with one line naming the field.

use std::process::Command;

use crate::common::demo_binary;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(demo_binary());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_configuration_exits_2_with_one_line_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("crosscut-it-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "port = 8080\nportt = 1\n").unwrap();
    let wrong_type = dir.join("type.toml");
    std::fs::write(&wrong_type, "max_connections = \"many\"\n").unwrap();
    let unknown = unknown.to_str().unwrap();
    let wrong_type = wrong_type.to_str().unwrap();

    // (flags, environment, the field the error must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--port", "70000"], vec![], "port"),
        (vec![], vec![("CROSSCUT_PORT", "eighty")], "port"),
        (vec!["--config", unknown], vec![], "portt"),
        (vec!["--config", wrong_type], vec![], "max_connections"),
        (
            vec![],
            vec![("CROSSCUT_TRUSTED_PROXIES", "10.0.0.0/33")],
            "trusted_proxies",
        ),
        (
            vec!["--cors-origins", "https://a.example,"],
            vec![],
            "cors_origins",
        ),
        (
            vec![],
            vec![("CROSSCUT_JWT_SECRET", "too-short")],
            "jwt_secret",
        ),
        (vec![], vec![("CROSSCUT_LOG_FORMAT", "xml")], "log_format"),
        (
            vec!["--config", "/nonexistent/crosscut.toml"],
            vec![],
            "config",
        ),
    ];
    for (args, env, field) in cases {
        let (code, stdout, stderr) = run(&args, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: stderr {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(&format!("invalid configuration: {field}: ")),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
    }
}

#[test]
fn help_lists_the_flags() {
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--host",
        "--port",
        "--max-connections",
        "--request-timeout-secs",
        "--cors-origins",
        "--rate-limit-per-second",
        "--trusted-proxies",
        "--log-format",
        "--shutdown-grace-secs",
        "--max-body-bytes",
        "--config",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from --help");
    }
}

#[tokio::test]
async fn binary_serves_with_config_from_env_and_flags() {
    let (mut child, _lines, addr) = crate::common::spawn_binary(
        &["--max-body-bytes", "2048"],
        &[("CROSSCUT_LOG_FORMAT", "json"), ("CROSSCUT_PORT", "1")],
    )
    .await;
    let res = reqwest::get(format!("http://{addr}/api/v1/users"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    child.kill().await.unwrap();
}

//! The layers (flags, environment, file), the bounds of every setting, and the file's forms.

use super::*;

#[test]
fn booleans_in_the_file_take_the_forms_the_environment_takes() {
    for (text, want) in [
        ("true", true),
        ("1", true),
        ("\"1\"", true),
        ("\"yes\"", true),
        ("0", false),
        ("\"false\"", false),
    ] {
        let s: Settings = toml::from_str(&format!("allow_private_targets = {text}\ndispatch = {text}")).unwrap();
        assert_eq!(
            (s.allow_private_targets, s.dispatch),
            (Some(want), Some(want)),
            "{text}"
        );
    }
    for bad in ["2", "\"maybe\""] {
        let err = toml::from_str::<Settings>(&format!("dispatch = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a boolean"), "{err}");
    }
    let s: Settings = toml::from_str("listen = \"127.0.0.1:1\"").unwrap();
    assert_eq!(s.dispatch, None, "absent stays unset");
}

#[test]
fn flags_and_env_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nmax_body_bytes = 4096\n").unwrap();
    let higher = Settings {
        listen: Some("127.0.0.1:1".into()),
        ..Default::default()
    };
    let c = Config::resolve(higher, Some(&file)).unwrap();
    assert_eq!(c.listen, "127.0.0.1:1");
    assert_eq!(c.max_body_bytes, 4096);
    assert_eq!(c.database_url, "sqlite://hookd.db");
}

#[test]
fn unknown_file_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(&file, "lisen = \"x\"\n").unwrap();
    let err = Config::resolve(Settings::default(), Some(&file)).unwrap_err();
    assert!(format!("{err:#}").contains("lisen"), "{err:#}");
}

/// Resolves `settings` alone; the error's text when refused.
fn refused(settings: Settings) -> Option<String> {
    Config::resolve(settings, None).err().map(|e| format!("{e:#}"))
}

/// The defaults with one setting changed.
fn with(change: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default();
    change(&mut s);
    s
}

fn d(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn absurd_durations_are_refused_naming_the_setting_and_its_range() {
    let cases: Vec<(&str, Settings)> = vec![
        ("HOOKD_RETENTION", with(|s| s.retention = d("300000000years"))),
        ("HOOKD_RETENTION", with(|s| s.retention = d("0s"))),
        ("HOOKD_DISABLE_AFTER", with(|s| s.disable_after = d("500ms"))),
        ("HOOKD_DISABLE_AFTER", with(|s| s.disable_after = d("11years"))),
        ("HOOKD_DISABLE_AFTER", with(|s| s.disable_after = d("soon"))),
        ("HOOKD_REQUEST_TIMEOUT", with(|s| s.request_timeout = d("0s"))),
        (
            "HOOKD_REQUEST_TIMEOUT",
            with(|s| (s.request_timeout, s.lease) = (d("2h"), d("3h"))),
        ),
        ("HOOKD_CONNECT_TIMEOUT", with(|s| s.connect_timeout = d("0s"))),
        ("HOOKD_CONNECT_TIMEOUT", with(|s| s.connect_timeout = d("1h"))),
        ("HOOKD_POLL_INTERVAL", with(|s| s.poll_interval = d("0s"))),
        ("HOOKD_POLL_INTERVAL", with(|s| s.poll_interval = d("2h"))),
        (
            "HOOKD_LEASE",
            with(|s| (s.lease, s.request_timeout) = (d("10ms"), d("10ms"))),
        ),
        ("HOOKD_LEASE", with(|s| s.lease = d("2days"))),
        ("HOOKD_DB_ACQUIRE_TIMEOUT", with(|s| s.db_acquire_timeout = d("0s"))),
        ("HOOKD_DB_ACQUIRE_TIMEOUT", with(|s| s.db_acquire_timeout = d("1day"))),
        ("HOOKD_RETRY_SCHEDULE", with(|s| s.retry_schedule = d("1m,100days"))),
        (
            "HOOKD_RETRY_SCHEDULE",
            with(|s| s.retry_schedule = d(&["1s"; 101].join(","))),
        ),
        ("HOOKD_HEADER_READ_TIMEOUT", with(|s| s.header_read_timeout = d("0s"))),
        ("HOOKD_HEADER_READ_TIMEOUT", with(|s| s.header_read_timeout = d("1h"))),
        ("HOOKD_BODY_READ_TIMEOUT", with(|s| s.body_read_timeout = d("1ms"))),
        ("HOOKD_BODY_READ_TIMEOUT", with(|s| s.body_read_timeout = d("2h"))),
        ("HOOKD_WRITE_TIMEOUT", with(|s| s.write_timeout = d("0s"))),
        ("HOOKD_WRITE_TIMEOUT", with(|s| s.write_timeout = d("2h"))),
        ("HOOKD_SHUTDOWN_GRACE", with(|s| s.shutdown_grace = d("1h"))),
        ("HOOKD_LOGIN_FAILURE_WINDOW", with(|s| s.login_failure_window = d("0s"))),
        (
            "HOOKD_LOGIN_FAILURE_WINDOW",
            with(|s| s.login_failure_window = d("2days")),
        ),
    ];
    for (name, settings) in cases {
        let err = refused(settings).unwrap_or_else(|| panic!("{name}: an absurd value was accepted"));
        assert!(err.contains(name), "{name}: {err}");
        assert!(
            err.contains("must be from") || err.contains("not a duration"),
            "{name}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn absurd_counts_are_refused_naming_the_setting_and_its_range() {
    let cases: Vec<(&str, Settings)> = vec![
        ("HOOKD_MAX_BODY_BYTES", with(|s| s.max_body_bytes = Some(10))),
        ("HOOKD_MAX_BODY_BYTES", with(|s| s.max_body_bytes = Some(1 << 40))),
        (
            "HOOKD_MAX_WEBHOOKS_PER_MERCHANT",
            with(|s| s.max_webhooks_per_merchant = Some(0)),
        ),
        (
            "HOOKD_MAX_WEBHOOKS_PER_MERCHANT",
            with(|s| s.max_webhooks_per_merchant = Some(-5)),
        ),
        (
            "HOOKD_MAX_WEBHOOKS_PER_MERCHANT",
            with(|s| s.max_webhooks_per_merchant = Some(i64::MAX)),
        ),
        ("HOOKD_MAX_MESSAGE_BYTES", with(|s| s.max_message_bytes = Some(0))),
        ("HOOKD_MAX_MESSAGE_BYTES", with(|s| s.max_message_bytes = Some(1 << 40))),
        ("HOOKD_MAX_IN_FLIGHT", with(|s| s.max_in_flight = Some(0))),
        ("HOOKD_MAX_IN_FLIGHT", with(|s| s.max_in_flight = Some(usize::MAX))),
        (
            "HOOKD_PER_WEBHOOK_CONCURRENCY",
            with(|s| s.per_webhook_concurrency = Some(0)),
        ),
        (
            "HOOKD_PER_WEBHOOK_CONCURRENCY",
            with(|s| s.per_webhook_concurrency = Some(1 << 20)),
        ),
        ("HOOKD_DB_MAX_CONNECTIONS", with(|s| s.db_max_connections = Some(1))),
        (
            "HOOKD_DB_MAX_CONNECTIONS",
            with(|s| s.db_max_connections = Some(100_000)),
        ),
        ("HOOKD_MAX_CONNECTIONS", with(|s| s.max_connections = Some(0))),
        ("HOOKD_MAX_CONNECTIONS", with(|s| s.max_connections = Some(usize::MAX))),
        ("HOOKD_LOGIN_CONCURRENCY", with(|s| s.login_concurrency = Some(0))),
        ("HOOKD_LOGIN_CONCURRENCY", with(|s| s.login_concurrency = Some(10_000))),
        ("HOOKD_LOGIN_QUEUE", with(|s| s.login_queue = Some(1 << 30))),
        (
            "HOOKD_LOGIN_FAILURES_PER_USER",
            with(|s| s.login_failures_per_user = Some(0)),
        ),
        (
            "HOOKD_LOGIN_FAILURES_PER_ADDRESS",
            with(|s| s.login_failures_per_address = Some(0)),
        ),
    ];
    for (name, settings) in cases {
        let err = refused(settings).unwrap_or_else(|| panic!("{name}: an absurd value was accepted"));
        assert!(err.contains(name) && err.contains("must be from"), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn the_message_names_the_range_and_the_value() {
    let err = refused(with(|s| s.request_timeout = d("0s"))).unwrap();
    assert_eq!(
        err,
        "request_timeout (HOOKD_REQUEST_TIMEOUT) must be from 10ms to 1h, not 0s"
    );
}

#[test]
fn the_new_limits_are_read_and_sensible_values_at_the_edges_are_accepted() {
    let c = Config::resolve(
        Settings {
            max_connections: Some(1),
            header_read_timeout: Some("100ms".into()),
            body_read_timeout: Some("1h".into()),
            shutdown_grace: Some("0s".into()),
            login_concurrency: Some(1),
            login_queue: Some(0),
            login_failures_per_user: Some(1),
            login_failures_per_address: Some(1_000_000),
            login_failure_window: Some("1s".into()),
            retention: Some("10years".into()),
            retry_schedule: Some("1ms,30days".into()),
            ..Settings::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(c.http.max_connections, 1);
    assert_eq!(c.http.header_read_timeout, Duration::from_millis(100));
    assert_eq!(c.http.body_read_timeout, Duration::from_secs(3600));
    assert_eq!(c.http.shutdown_grace, Duration::ZERO);
    assert_eq!(c.app.auth.check_threads, 1);
    assert_eq!(c.app.auth.check_queue, 0);
    assert_eq!(c.app.auth.max_failures_per_user, 1);
    assert_eq!(c.app.auth.max_failures_per_address, 1_000_000);
    assert_eq!(c.app.auth.failure_window, Duration::from_secs(1));
    let d = Config::defaults();
    assert_eq!(d.http, HttpLimits::default());
    assert_eq!(d.app.auth, AuthSettings::default());
}

#[test]
fn the_new_limits_come_from_the_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(
        &file,
        "max_connections = 64\nheader_read_timeout = \"5s\"\nlogin_failures_per_user = 3\n",
    )
    .unwrap();
    let c = Config::resolve(Settings::default(), Some(&file)).unwrap();
    assert_eq!(c.http.max_connections, 64);
    assert_eq!(c.http.header_read_timeout, Duration::from_secs(5));
    assert_eq!(c.app.auth.max_failures_per_user, 3);
}

#[test]
fn disable_after_defaults_to_five_days_and_zero_turns_it_off() {
    let five_days = Some(Duration::from_secs(5 * 86_400));
    assert_eq!(Config::defaults().app.delivery.disable_after, five_days);
    for (value, want) in [
        ("0", None),
        ("0s", None),
        ("2s", Some(Duration::from_secs(2))),
        ("10years", Some(Duration::from_secs(315_576_000))),
    ] {
        let c = Config::resolve(with(|s| s.disable_after = d(value)), None).unwrap();
        assert_eq!(c.app.delivery.disable_after, want, "{value}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(&file, "disable_after = \"1day\"\n").unwrap();
    let c = Config::resolve(Settings::default(), Some(&file)).unwrap();
    assert_eq!(c.app.delivery.disable_after, Some(Duration::from_secs(86_400)));
}

/// An environment of `vars` alone, for `read_secret_files`.
fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<std::ffi::OsString> {
    let vars: Vec<(String, std::ffi::OsString)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[test]
fn a_secret_file_gives_the_setting_its_contents_without_the_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db");
    std::fs::write(&file, "sqlite:///var/lib/hookd/hookd.db\n").unwrap();
    let mut s = Settings::default();
    s.read_secret_files(env_of(&[("HOOKD_DATABASE_URL_FILE", &file)]))
        .unwrap();
    assert_eq!(s.database_url.as_deref(), Some("sqlite:///var/lib/hookd/hookd.db"));
    let c = Config::resolve(s, None).unwrap();
    assert_eq!(c.database_url, "sqlite:///var/lib/hookd/hookd.db");
}

#[test]
fn without_a_file_variable_nothing_changes() {
    let mut s = Settings::default();
    s.read_secret_files(env_of(&[])).unwrap();
    assert_eq!(s.database_url, None);
}

#[test]
fn a_flag_wins_over_the_secret_file_which_wins_over_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("db");
    std::fs::write(&secret, "sqlite://from-secret.db\n").unwrap();
    let config = dir.path().join("hookd.toml");
    std::fs::write(&config, "database_url = \"sqlite://from-config.db\"\n").unwrap();
    let env = env_of(&[("HOOKD_DATABASE_URL_FILE", &secret)]);

    let mut s = Settings::default();
    s.read_secret_files(&env).unwrap();
    assert_eq!(
        Config::resolve(s, Some(&config)).unwrap().database_url,
        "sqlite://from-secret.db"
    );
    let mut flagged = with(|s| s.database_url = d("sqlite://from-flag.db"));
    flagged.read_secret_files(&env).unwrap();
    assert_eq!(flagged.database_url.as_deref(), Some("sqlite://from-flag.db"));
}

#[test]
fn a_secret_given_both_ways_is_refused_naming_both_variables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db");
    std::fs::write(&file, "postgres://u:sekrit@db/hookd\n").unwrap();
    let plain = Path::new("postgres://u:other@db/hookd");
    let err = Settings::default()
        .read_secret_files(env_of(&[
            ("HOOKD_DATABASE_URL", plain),
            ("HOOKD_DATABASE_URL_FILE", &file),
        ]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HOOKD_DATABASE_URL and HOOKD_DATABASE_URL_FILE are both set"),
        "{err}"
    );
    assert!(!err.contains("sekrit") && !err.contains("other"), "{err}");
}

#[test]
fn a_missing_or_empty_secret_file_is_refused_naming_the_file_not_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = Settings::default()
        .read_secret_files(env_of(&[("HOOKD_DATABASE_URL_FILE", &missing)]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("HOOKD_DATABASE_URL_FILE: cannot read"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = Settings::default()
        .read_secret_files(env_of(&[("HOOKD_DATABASE_URL_FILE", &empty)]))
        .unwrap_err()
        .to_string();
    assert_eq!(err, format!("HOOKD_DATABASE_URL_FILE: {} is empty", empty.display()));

    let binary = dir.path().join("binary");
    std::fs::write(&binary, b"sekrit\xff\xfe").unwrap();
    let err = Settings::default()
        .read_secret_files(env_of(&[("HOOKD_DATABASE_URL_FILE", &binary)]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&binary.display().to_string()) && !err.contains("sekrit"),
        "{err}"
    );
}

#[test]
fn metrics_listen_comes_from_the_settings_or_the_file_and_is_unset_by_default() {
    assert_eq!(Config::defaults().metrics_listen, None);
    let c = Config::resolve(with(|s| s.metrics_listen = d("127.0.0.1:9090")), None).unwrap();
    assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9090"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(&file, "metrics_listen = \"0.0.0.0:9100\"\n").unwrap();
    let c = Config::resolve(Settings::default(), Some(&file)).unwrap();
    assert_eq!(c.metrics_listen.as_deref(), Some("0.0.0.0:9100"));
}

#[test]
fn portal_settings_are_read_and_bad_origins_refused_naming_the_setting() {
    let c = Config::resolve(
        with(|s| {
            s.public_url = d("https://hooks.example.com/");
            s.console_frame_ancestors = d("https://platform.example, https://*.platform.example:8443");
        }),
        None,
    )
    .unwrap();
    assert_eq!(c.app.portal.public_url.as_deref(), Some("https://hooks.example.com"));
    assert_eq!(
        c.app.portal.frame_ancestors,
        ["https://platform.example", "https://*.platform.example:8443"]
    );
    assert!(
        Config::defaults().app.portal.frame_ancestors.is_empty(),
        "never framed by default"
    );
    for bad in [
        "*",
        "https://x.example/app",
        "https://*",
        "platform.example",
        "https://x.example; script-src *",
    ] {
        let err = refused(with(|s| s.console_frame_ancestors = d(bad))).unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.contains("HOOKD_CONSOLE_FRAME_ANCESTORS"), "{err}");
    }
    let err = refused(with(|s| s.public_url = d("hooks.example.com"))).expect("a relative public URL is refused");
    assert!(err.contains("HOOKD_PUBLIC_URL"), "{err}");
}

#[test]
fn encryption_keys_come_from_their_file_or_the_config_file_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    let mut s = Settings::default();
    s.read_secret_files(env_of(&[("HOOKD_ENCRYPTION_KEYS_FILE", &file)]))
        .unwrap();
    assert_eq!(
        Config::resolve(s, None).unwrap().encryption_keys.current_id(),
        Some("k1")
    );
    assert!(!Config::defaults().encryption_keys.is_on(), "off unless set");

    let config = dir.path().join("hookd.toml");
    std::fs::write(&config, "encryption_keys = \"k2:c2hvcnQ=\"\n").unwrap();
    let err = format!("{:#}", Config::resolve(Settings::default(), Some(&config)).unwrap_err());
    assert!(
        err.contains("HOOKD_ENCRYPTION_KEYS key \"k2\" is 5 bytes, not 32"),
        "{err}"
    );
    assert!(!err.contains("c2hvcnQ"), "{err}");
}

#[test]
fn ingest_sources_are_a_comma_list_and_bad_ones_are_refused_without_their_text() {
    let config = Config::resolve(
        with(|s| {
            s.ingest = Some(
                "amqp://guest:guest@127.0.0.1:5672/%2f?queue=orders, nats://127.0.0.1:4222/orders.in?stream=S&consumer=C,"
                    .into(),
            )
        }),
        None,
    )
    .unwrap();
    assert_eq!(config.ingest.len(), 2);
    assert!(Config::defaults().ingest.is_empty());
    let file: Settings = toml::from_str("ingest = \"amqp://mq/?queue=q\"").unwrap();
    assert_eq!(file.ingest.as_deref(), Some("amqp://mq/?queue=q"));
    for (list, why) in [
        ("amqp://u:hunter22@mq/", "source 1: amqp ingest URL needs a queue"),
        ("amqp://mq/?queue=q,http://u:hunter22@x/", "source 2: scheme must be"),
        (
            "nats://u:hunter22@n/a?stream=S",
            "source 1: nats ingest URL needs a consumer",
        ),
        ("amqp://mq/?queue=q,amqp://mq:5672/?queue=q", "source 2 is given twice"),
    ] {
        let err = refused(with(|s| s.ingest = Some(list.into()))).unwrap();
        assert!(err.contains("HOOKD_INGEST") && err.contains(why), "{list}: {err}");
        assert!(!err.contains("hunter22"), "{err}");
    }
}

#[test]
fn ingest_sources_do_not_show_their_password_when_debug_printed() {
    let config = Config::resolve(with(|s| s.ingest = Some("amqp://u:hunter22@mq/?queue=q".into())), None).unwrap();
    let shown = format!("{config:?}");
    assert!(shown.contains("mq") && !shown.contains("hunter22"), "{shown}");
}

#[test]
fn peer_links_need_postgresql_and_host_port_addresses() {
    let pg = |s: &mut Settings| s.database_url = Some("postgres://u@db/hookd".into());
    let c = Config::resolve(
        with(|s| {
            pg(s);
            s.peer_listen = Some("10.0.0.5:7071".into());
        }),
        None,
    )
    .unwrap();
    assert_eq!(
        c.peers,
        Some(PeerSettings {
            listen: "10.0.0.5:7071".into(),
            advertise: None
        })
    );
    assert_eq!(Config::resolve(with(pg), None).unwrap().peers, None, "off by default");

    let sqlite = refused(with(|s| s.peer_listen = Some("127.0.0.1:7071".into()))).unwrap();
    assert!(sqlite.contains("PostgreSQL"), "{sqlite}");
    for (listen, advertise) in [
        ("7071", None),
        ("10.0.0.5:port", None),
        (":7071", None),
        ("10.0.0.5:7071", Some("x")),
    ] {
        let err = refused(with(|s| {
            pg(s);
            s.peer_listen = Some(listen.into());
            s.peer_advertise = advertise.map(Into::into);
        }))
        .unwrap_or_else(|| panic!("{listen} / {advertise:?} taken"));
        assert!(err.contains("HOST:PORT"), "{err}");
    }
    let alone = refused(with(|s| {
        pg(s);
        s.peer_advertise = Some("10.0.0.5:7071".into());
    }))
    .unwrap();
    assert!(alone.contains("needs peer_listen"), "{alone}");
}

use super::*;
use crate::domain::webhook_url::{UrlError, WebhookUrl};

fn target(s: &str) -> Result<BrokerTarget, BrokerUrlError> {
    BrokerTarget::parse(&Url::parse(s).unwrap()).expect("a broker scheme")
}

#[test]
fn amqp_urls_give_vhost_exchange_and_routing_key() {
    let BrokerTarget::Amqp(t) =
        target("amqp://u%40x:p%3Aw@mq.example.com:5673/shop%2Fa?exchange=ev&routing_key=a.b").unwrap()
    else {
        panic!("amqp")
    };
    assert_eq!(t.address.host, "mq.example.com");
    assert_eq!(t.address.port, 5673);
    assert_eq!(t.address.user, "u@x");
    assert_eq!(t.address.password.as_deref(), Some("p:w"));
    assert_eq!(
        (t.vhost.as_str(), t.exchange.as_str(), t.routing_key.as_str()),
        ("shop/a", "ev", "a.b")
    );
    let BrokerTarget::Amqp(t) = target("amqp://mq.example.com?exchange=").unwrap() else {
        panic!("amqp")
    };
    assert_eq!((t.address.port, t.vhost.as_str(), t.exchange.as_str()), (5672, "/", ""));
}

#[test]
fn nats_urls_give_one_subject() {
    let BrokerTarget::Nats(t) = target("nats://n.example.com/orders.created").unwrap() else {
        panic!("nats")
    };
    assert_eq!((t.address.port, t.subject.as_str()), (4222, "orders.created"));
}

#[test]
fn hostile_broker_urls_are_refused_with_a_reason() {
    let cases = [
        ("amqp://mq.example.com/", BrokerUrlError::MissingExchange),
        (
            "amqp://mq.example.com/?exchange=a&password=x",
            BrokerUrlError::UnknownParameter("password".into(), "amqp"),
        ),
        (
            "amqp://mq.example.com/?exchange=a&exchange=b",
            BrokerUrlError::Repeated("amqp", "exchange".into()),
        ),
        ("amqp://mq.example.com:0/?exchange=a", BrokerUrlError::PortZero),
        ("amqp://mq.example.com/a/b?exchange=a", BrokerUrlError::AmqpPath),
        ("amqp://mq.example.com/?exchange=a#x", BrokerUrlError::Fragment),
        ("nats://n.example.com/", BrokerUrlError::NatsPath),
        ("nats://n.example.com/a/b", BrokerUrlError::NatsPath),
        ("nats://n.example.com/a.*", BrokerUrlError::BadName("subject")),
        ("nats://n.example.com/a..b", BrokerUrlError::BadName("subject")),
        (
            "nats://n.example.com/a?token=x",
            BrokerUrlError::UnknownParameter("token".into(), "nats"),
        ),
    ];
    for (url, want) in cases {
        assert_eq!(target(url), Err(want), "{url}");
    }
    let long = format!("amqp://mq.example.com/?exchange={}", "e".repeat(256));
    assert_eq!(target(&long), Err(BrokerUrlError::TooLong("exchange")));
    assert_eq!(
        target("amqp://mq.example.com/?exchange=%0a"),
        Err(BrokerUrlError::BadName("exchange"))
    );
}

#[test]
fn webhook_urls_accept_brokers_with_target_safety() {
    assert!(WebhookUrl::parse("amqp://g:g@mq.example.com/?exchange=x", false).is_ok());
    assert!(WebhookUrl::parse("nats://n.example.com:4222/a.b", false).is_ok());
    for private in [
        "amqp://127.0.0.1/?exchange=x",
        "amqp://g:g@10.0.0.1:5672/?exchange=x",
        "nats://localhost/a",
        "nats://[::1]/a",
        "nats://169.254.169.254/a",
    ] {
        assert!(
            matches!(WebhookUrl::parse(private, false), Err(UrlError::Forbidden(_))),
            "{private}"
        );
        assert!(WebhookUrl::parse(private, true).is_ok(), "{private}");
    }
    assert!(matches!(
        WebhookUrl::parse("amqp://mq.example.com/", false),
        Err(UrlError::Broker(BrokerUrlError::MissingExchange))
    ));
    assert_eq!(
        WebhookUrl::parse("amqps://mq.example.com/?exchange=x", false),
        Err(UrlError::Scheme("amqps".into()))
    );
    assert_eq!(WebhookUrl::parse("nats:///a", true), Err(UrlError::NoHost));
}

#[test]
fn ingest_sources_need_their_queue_or_stream_and_consumer() {
    assert_eq!(
        IngestSource::parse("amqp://g:g@127.0.0.1:5672/%2f?queue=in").unwrap(),
        IngestSource::Amqp {
            address: BrokerAddress {
                host: "127.0.0.1".into(),
                port: 5672,
                user: "g".into(),
                password: Some("g".into())
            },
            vhost: "/".into(),
            queue: "in".into(),
        }
    );
    assert!(matches!(
        IngestSource::parse("nats://127.0.0.1/ev.in?stream=EV&consumer=hookd"),
        Ok(IngestSource::Nats { .. })
    ));
    for (bad, why) in [
        ("amqp://127.0.0.1/", "queue"),
        ("amqp://127.0.0.1/?queue=", "empty"),
        ("nats://127.0.0.1/ev?stream=EV", "consumer"),
        ("nats://127.0.0.1/ev?consumer=c", "stream"),
        ("http://127.0.0.1/", "scheme"),
        ("amqp://127.0.0.1/?queue=q&x=1", "unknown"),
    ] {
        let err = IngestSource::parse(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

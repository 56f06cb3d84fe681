//! A fleet beyond one broker: two ejabberd nodes (Debian 12's MQTT 5 broker, `mod_mqtt`)
//! clustered over Erlang distribution on loopback. Boxes on one node, the operator on the other:
//! commands, replies and group commands cross nodes; one node killed, and its boxes move to the
//! other (`fleet.failover`) with nothing lost or run twice.

mod support;

use roombox::config::Config;
use roombox::fleet::cli::{ConnArgs, Operator, To};
use roombox::fleet::sim::SimBox;
use std::path::Path;
use std::time::Duration;
use support::ejabberd::Ejabberd;

const LONG: Duration = Duration::from_secs(30);
const USER: &str = "fleet";
const PASSWORD: &str = "s3cret-pw";

fn box_config(brokers: &[String], device: &str, dir: &Path) -> Config {
    let mut c = Config::default();
    c.device.id = device.into();
    c.device.state_dir = dir.to_path_buf();
    c.fleet.broker = brokers[0].clone();
    c.fleet.failover = brokers[1..].to_vec();
    c.fleet.prefix = "rb".into();
    c.fleet.groups = vec!["lobby".into()];
    c.fleet.auth.username = USER.into();
    let pw = dir.join("fleet.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    c.fleet.auth.password_file = pw;
    c.fleet.reconnect.initial = Duration::from_millis(100);
    c.fleet.reconnect.max = Duration::from_millis(500);
    c.fleet.state_min_interval = Duration::from_millis(100);
    c.fleet.keep_alive = Duration::from_secs(5);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

async fn operator(broker: &str, dir: &Path) -> Operator {
    let pw = dir.join("operator.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    Operator::connect(&ConnArgs {
        broker: broker.into(),
        prefix: "rb".into(),
        username: Some(USER.into()),
        password_file: Some(pw),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Waits until the box answers a ping (it is connected and subscribed).
async fn wait_online(op: &mut Operator, device: &str) {
    support::fleet::wait_online(op, device, LONG).await
}

fn broker_of(b: &SimBox) -> Option<(String, String)> {
    let s = b.agent.state().borrow().clone();
    s.fleet.map(|f| {
        (
            f.broker,
            serde_json::to_string(&f.state).unwrap_or_default(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxes_on_one_node_obey_an_operator_on_the_other_and_move_when_their_node_dies() {
    let a = tokio::task::spawn_blocking(Ejabberd::start).await.unwrap();
    let b = tokio::task::spawn_blocking(Ejabberd::start).await.unwrap();
    a.register(USER, PASSWORD);
    b.join(&a);
    let mut a = a;
    let dir = tempfile::tempdir().unwrap();
    let brokers = [a.url(), b.url()];
    let d1 = dir.path().join("box1");
    let d2 = dir.path().join("box2");
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    // box1 on node a (b its failover); box2 on node b.
    let c1 = box_config(&brokers, "box1", &d1);
    let c2 = box_config(&[b.url()], "box2", &d2);
    let box1 = SimBox::start(&c1, None, &d1).await.unwrap();
    let _box2 = SimBox::start(&c2, None, &d2).await.unwrap();
    let mut op = operator(&b.url(), dir.path()).await;
    wait_online(&mut op, "box1").await;
    wait_online(&mut op, "box2").await;
    assert_eq!(
        broker_of(&box1).map(|b| b.0),
        Some(a.url()),
        "box1 starts on its first broker"
    );

    // A command to a box on the other node, and a group command to both.
    let r = op
        .request(
            &To::Device("box1".into()),
            "request-keyframe",
            b"",
            None,
            LONG,
        )
        .await
        .unwrap();
    assert!(r[0].1.ok, "{r:?}");
    let mut g = op
        .request(
            &To::Group("lobby".into()),
            "ping",
            b"",
            None,
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    g.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        g.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["box1", "box2"],
        "every member answers a group command once, across nodes"
    );

    // Node a dies: box1 moves to node b and answers there; a command retried with its id after
    // the move is answered from the cache, not run again.
    tokio::task::spawn_blocking(move || a.kill()).await.unwrap();
    support::eventually("box1 on node b", LONG, || async {
        broker_of(&box1)
            .filter(|(url, state)| *url == b.url() && state.contains("CONNECTED"))
            .map(|_| ())
    })
    .await;
    wait_online(&mut op, "box1").await;
    let before = box1.media_count("RequestKeyframe");
    for _ in 0..2 {
        let r = op
            .request(
                &To::Device("box1".into()),
                "request-keyframe",
                b"",
                Some("after-failover-1".into()),
                LONG,
            )
            .await
            .unwrap();
        assert!(r[0].1.ok, "{r:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        box1.media_count("RequestKeyframe"),
        before + 1,
        "a command id answered twice runs once"
    );
    assert!(
        !serde_json::to_string(&box1.agent.state().borrow().clone())
            .unwrap()
            .contains(PASSWORD),
        "the password is in no state"
    );
}

//! The thin side of the fleet client: rumqttc's event loop, reconnecting after a failure with
//! the files read again, and the conversions between MQTT packets and the session's messages.

use super::*;

/// What the network task reports.
pub(super) enum Net {
    Up {
        session_present: bool,
        /// The broker that accepted the box (one of `fleet.broker` and `fleet.failover`).
        broker: String,
    },
    Publish(Box<rumqttc::v5::mqttbytes::v5::Publish>),
    Down(Failure),
}

/// The MQTT options for a box on its `i`th broker: the endpoint's address, credentials and TLS,
/// plus a persistent session and the last will.
pub(super) fn box_options(
    config: &FleetConfig,
    device_id: &str,
    i: usize,
) -> anyhow::Result<MqttOptions> {
    let mut o = Endpoint::of_fleet_at(config, i)?.options(format!("roombox-{device_id}"), 128)?;
    o.set_keep_alive(config.keep_alive);
    let expiry = config.session_expiry.as_secs().min(u64::from(u32::MAX - 1)) as u32;
    o.set_clean_start(expiry == 0);
    o.set_session_expiry_interval((expiry > 0).then_some(expiry));
    o.set_max_packet_size(Some(MAX_PACKET_BYTES));
    let topics = topic::Topics::new(&config.prefix, device_id, &[]);
    o.set_last_will(LastWill::new(
        topics.status(),
        session::will_payload(device_id),
        QoS::AtLeastOnce,
        true,
        None,
    ));
    Ok(o)
}

/// Drives rumqttc's event loop: reports what arrives, and after a failure waits out the backoff
/// and reads the certificate and password files again (a fixed file heals the box without a
/// restart). With failover brokers, each failure moves on to the next one, round; the client
/// id, and so the session where the cluster shares it, stays the same.
pub(super) fn net_task(
    mut eventloop: rumqttc::v5::EventLoop,
    config: FleetConfig,
    device_id: String,
    net_tx: mpsc::Sender<Net>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Backoff::from_config(&config.reconnect);
        let brokers = config.brokers().len();
        let mut at = 0;
        let mut endpoint = Endpoint::of_fleet_at(&config, at);
        loop {
            let report = match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    Some(Net::Up {
                        session_present: ack.session_present,
                        broker: config.brokers()[at % brokers].to_string(),
                    })
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => Some(Net::Publish(Box::new(p))),
                Ok(MqttEvent::Incoming(Packet::Disconnect(d))) => Some(Net::Down(Failure {
                    what: format!("the broker disconnected the box: {:?}", d.reason_code),
                    fix: None,
                })),
                Ok(_) => None,
                Err(e) => {
                    let failure = match &endpoint {
                        Ok(ep) => link::describe(&e, ep),
                        Err(err) => Failure {
                            what: format!("{err:#}"),
                            fix: None,
                        },
                    };
                    if net_tx.send(Net::Down(failure)).await.is_err() {
                        return;
                    }
                    // The next broker at once while the list lasts; the backoff once round it.
                    at = (at + 1) % brokers;
                    if brokers == 1 || at == 0 {
                        tokio::time::sleep(backoff.next_delay()).await;
                    } else {
                        tokio::time::sleep(config.reconnect.initial).await;
                    }
                    endpoint = Endpoint::of_fleet_at(&config, at);
                    if let Ok(o) = box_options(&config, &device_id, at) {
                        // Same client id and session; only files re-read (and the broker
                        // moved on).
                        eventloop.options = o;
                    }
                    None
                }
            };
            if let Some(r) = report {
                if net_tx.send(r).await.is_err() {
                    return;
                }
            }
        }
    })
}
/// Publishes one message through rumqttc without waiting; false when its queue is full or
/// closed (the caller keeps the message).
pub(super) fn publish(client: &AsyncClient, m: &Message) -> bool {
    let props = PublishProperties {
        correlation_data: m.correlation.clone().map(Into::into),
        user_properties: m.user.clone(),
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    let qos = if m.qos1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    };
    client
        .try_publish_with_properties(
            m.topic.clone(),
            qos,
            m.retain,
            m.payload.clone().into_bytes(),
            props,
        )
        .is_ok()
}

pub(super) fn to_request(p: rumqttc::v5::mqttbytes::v5::Publish) -> Request {
    let props = p.properties.unwrap_or_default();
    Request {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload.to_vec(),
        response_topic: props.response_topic,
        correlation: props.correlation_data.map(|b| b.to_vec()),
        user: props.user_properties,
        dup: p.dup,
    }
}

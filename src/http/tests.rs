//! The front door's rules without a socket: token comparison, the wrong-token lockout (per address,
//! IPv6 by its /64, bounded under a flood) and query encoding.

use super::*;

#[test]
fn tokens_compare_whole() {
    assert!(same("abcdef0123456789", "abcdef0123456789"));
    assert!(!same("abcdef0123456789", "abcdef012345678"));
    assert!(!same("abcdef0123456789", "abcdef0123456780"));
}

#[test]
fn five_wrong_tokens_in_the_window_lock_an_address_out_for_a_while() {
    let mut f = Failures::default();
    let a: IpAddr = [192, 0, 2, 1].into();
    let b: IpAddr = [192, 0, 2, 2].into();
    let t0 = Instant::now();
    for i in 0..4 {
        f.fail(a, t0 + Duration::from_secs(i));
        assert!(!f.locked(a, t0 + Duration::from_secs(i)), "after {}", i + 1);
    }
    f.fail(a, t0 + Duration::from_secs(4));
    assert!(f.locked(a, t0 + Duration::from_secs(4)));
    assert!(!f.locked(b, t0 + Duration::from_secs(4)), "others are not");
    assert!(f.locked(
        a,
        t0 + Duration::from_secs(4) + LOCKOUT - Duration::from_millis(1)
    ));
    assert!(
        !f.locked(a, t0 + Duration::from_secs(4) + LOCKOUT),
        "it ends"
    );
}

#[test]
fn wrong_tokens_spread_wider_than_the_window_do_not_lock() {
    let mut f = Failures::default();
    let a: IpAddr = [192, 0, 2, 1].into();
    let t0 = Instant::now();
    // One every 3 s: never five inside 10 s.
    for i in 0..20 {
        let now = t0 + Duration::from_secs(3 * i);
        f.fail(a, now);
        assert!(!f.locked(a, now), "failure {}", i + 1);
    }
}

#[test]
fn query_values_are_encoded() {
    assert_eq!(url_encode("Abc-0._~"), "Abc-0._~");
    assert_eq!(url_encode("a&b#c d/é"), "a%26b%23c%20d%2F%C3%A9");
}

#[test]
fn an_ipv6_client_is_counted_by_its_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
    let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("v6");
    let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
    assert_eq!(client_key(a), client_key(b));
    assert_ne!(client_key(a), client_key(other));
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("v6");
    assert_eq!(client_key(mapped), IpAddr::from([192, 0, 2, 7]));
    assert_eq!(
        client_key([192, 0, 2, 7].into()),
        IpAddr::from([192, 0, 2, 7])
    );
}

#[test]
fn a_flood_from_many_addresses_stays_bounded() {
    let mut f = Failures::default();
    let t0 = Instant::now();
    for i in 0..(3 * MAX_TRACKED as u32) {
        f.fail(IpAddr::from(i.to_be_bytes()), t0);
    }
    assert!(f.by_ip.len() <= MAX_TRACKED);
    // Locked addresses survive a sweep of stale ones.
    let a: IpAddr = [198, 51, 100, 1].into();
    let later = t0 + FAILURE_WINDOW;
    for _ in 0..MAX_FAILURES {
        f.fail(a, later);
    }
    f.sweep(later + Duration::from_secs(1));
    assert!(f.locked(a, later + Duration::from_secs(1)));
}

use rand::RngCore as _;
use tessera_core::{Clock as _, Timestamp};
use tessera_testkit::{seeded_rng, MockClock};

#[test]
fn mock_clock_moves_only_when_told_and_clones_share_time() {
    let clock = MockClock::new(Timestamp(1000));
    let shared = clock.clone();
    assert_eq!(shared.now(), Timestamp(1000));
    clock.advance(30);
    assert_eq!(shared.now(), Timestamp(1030));
    shared.set(Timestamp(10));
    assert_eq!(clock.now(), Timestamp(10));
    clock.set(Timestamp(i64::MAX - 1));
    clock.advance(u64::MAX);
    assert_eq!(clock.now(), Timestamp(i64::MAX));
}

#[test]
fn seeded_rng_is_deterministic() {
    let (mut a, mut b, mut c) = (seeded_rng(1), seeded_rng(1), seeded_rng(2));
    let first = a.next_u64();
    assert_eq!(first, b.next_u64());
    assert_ne!(first, c.next_u64());
}

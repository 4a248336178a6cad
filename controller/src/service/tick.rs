//! The controller's tick guard follows its tightest SLO.
//!
//! Every glommio executor here runs a tick guard (`clockwork_net::runtime`): a timer
//! every tick, so that glommio's park race stalls the executor for at most one tick.
//! `--tick-us` (default 1 ms) is chosen for the tightest work, where a millisecond's
//! stall matters. With looser SLOs it costs wake-ups and buys nothing: at the main
//! job's 100 ms SLO the tick was 0.58 of the controller's 2.5 wake-ups per request, and
//! an idle controller wakes once per tick. So the controller sets its tick to a
//! twentieth of the tightest recent SLO (the scheduler's, or the default SLO before
//! any request), kept between `--tick-us` and `--tick-max-us`: a wrong park then
//! costs at most 5 % of any request's SLO.

use clockwork_core::Nanos;
use std::time::Duration;

/// A wrong park may cost at most this fraction of the tightest SLO: the tick is the
/// SLO divided by this.
pub(crate) const SLO_PER_TICK: u64 = 20;

/// The tick for the tightest recent SLO `slo`, between `floor` (the configured tick)
/// and `ceiling`. A ceiling at or below the floor keeps the floor.
pub(crate) fn tick_for(slo: Nanos, floor: Duration, ceiling: Duration) -> Duration {
    let want = Duration::from_nanos(slo.get() / SLO_PER_TICK);
    want.min(ceiling).max(floor)
}

/// Sets this thread's tick guard to [`tick_for`] if it is not there already. Cheap
/// (a thread-local look-up and a compare) unless the tick changes, which happens when
/// the tightest SLO does.
pub(crate) fn follow(slo: Nanos, floor: Duration, ceiling: Duration) {
    let want = tick_for(slo, floor, ceiling);
    if clockwork_net::runtime::tick().is_some_and(|t| t != want) {
        clockwork_net::runtime::set_tick(want);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_is_a_twentieth_of_the_slo_between_its_bounds() {
        let (ms, us) = (Duration::from_millis, Duration::from_micros);
        let floor = ms(1);
        let ceiling = ms(5);
        assert_eq!(tick_for(Nanos::from_millis(100), floor, ceiling), ms(5));
        assert_eq!(tick_for(Nanos::from_millis(60), floor, ceiling), ms(3));
        assert_eq!(tick_for(Nanos::from_millis(10), floor, ceiling), ms(1));
        assert_eq!(tick_for(Nanos::from_micros(2_500), floor, ceiling), ms(1));
        assert_eq!(tick_for(Nanos::from_secs(10), floor, ceiling), ms(5));
        // A ceiling at or below the floor keeps the configured tick.
        assert_eq!(
            tick_for(Nanos::from_millis(100), us(2_000), us(1_000)),
            us(2_000)
        );
    }
}

//! The matcher's `/metrics` page in the Prometheus text format.

use crate::state::State;

/// The metrics of the matcher's state.
pub fn encode(s: &State) -> String {
    let (active, held) = s.market.reservation_gauges();
    format!(
        "# HELP matcher_offers Offers in the book.\n# TYPE matcher_offers gauge\nmatcher_offers {}\n\
         # HELP matcher_resting_bids Bids waiting for capacity.\n# TYPE matcher_resting_bids gauge\nmatcher_resting_bids {}\n\
         # HELP matcher_outbox_steps Cross-canister steps pending.\n# TYPE matcher_outbox_steps gauge\nmatcher_outbox_steps {}\n\
         # HELP matcher_events Events recorded.\n# TYPE matcher_events counter\nmatcher_events {}\n\
         # HELP matcher_reservations Active reservations.\n# TYPE matcher_reservations gauge\nmatcher_reservations {}\n\
         # HELP matcher_reserved_slots_held Slots of active reservations held by a provider.\n# TYPE matcher_reserved_slots_held gauge\nmatcher_reserved_slots_held {}\n",
        s.market.book.offer_count(),
        s.market.book.bid_count(),
        s.market.outbox.len(),
        s.events.len(),
        active,
        held,
    )
}

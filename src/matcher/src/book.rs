//! The order book: providers' standing offers and the bids resting until
//! capacity appears.
//!
//! Each ledger has two books, one per [`PriceUnit`]: one-off jobs bid per
//! billion fuel, reserved slots per interval. An offer quotes both prices
//! and stands in both books; a bid stands in the book of its unit.
//!
//! Matching rule: a new bid takes the cheapest eligible offer,
//! ties going to the oldest, at the offer's price; a bid that can't match
//! rests, and when capacity appears the resting bids are served highest price
//! first, ties going to the oldest.
//!
//! Both sides are kept in stable memory with an index ordered the way the
//! rule reads them, so finding a match is a range scan from the best entry:
//! logarithmic in the size of the book, plus the ineligible entries skipped
//! (at most [`MAX_SCAN`] per search).

use candid::Principal;
use canister_common::codec::Cbor;
use ic_stable_structures::{Memory, StableBTreeMap};
use market_api::matcher::{Offer, PriceLevel, PriceUnit};
use market_api::prices::Currency;
use market_api::registry::{RecordRequirement, TrackRecord};
use market_api::{JobId, OfferId, Tokens};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;

/// Most ineligible entries one search skips before giving up; bounds the
/// instructions a single message can spend in the book.
pub const MAX_SCAN: usize = 256;
/// How many of the cheapest eligible offers an audit run's provider is
/// picked from at random.
pub const AUDIT_CANDIDATES: usize = 16;

/// What a bid needs from an offer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Bid {
    /// The job.
    pub job_id: JobId,
    /// Ledger the buyer pays with.
    pub ledger: Principal,
    /// What the price is quoted per: a one-off job bids per billion fuel,
    /// a reserved slot per interval.
    pub unit: PriceUnit,
    /// Highest price (per `unit`) the buyer accepts, in `currency`.
    pub max_price: Tokens,
    /// What the price is counted in: an XDR bid (in cycles) is matched
    /// only with XDR offers.
    #[serde(default)]
    pub currency: Currency,
    /// Memory the job needs, in MiB.
    pub memory_mib: u32,
    /// Fuel the job needs: its whole budget (a one-off job), or per
    /// interval (a reserved slot).
    pub fuel: u64,
    /// The one-off job's own deadline for an attempt, if it names one: an
    /// offer too slow to burn the budget in that time can't run it.
    pub deadline_secs: Option<u64>,
    /// The job's interval.
    pub interval_secs: u64,
    /// Smallest provider stake the buyer accepts.
    pub min_provider_stake: Tokens,
    /// The track record the buyer asks of a provider.
    #[serde(default)]
    pub min_record: Option<RecordRequirement>,
    /// Providers that failed this job before and must not get it again.
    pub excluded_providers: Vec<Principal>,
    /// For an audit run, the random number that picks its provider among
    /// the eligible offers (offers that opted out of audits don't take it);
    /// `None` for any other job.
    #[serde(default)]
    pub audit_pick: Option<u64>,
    /// When the bid entered the book (ties in price go to the oldest).
    pub submitted_at_ns: u64,
    /// When the bid last began to rest (0 in bids rested before this was
    /// kept: they count from `submitted_at_ns`).
    #[serde(default)]
    pub rested_at_ns: u64,
}

impl Bid {
    /// When the bid began its current rest in the book.
    pub fn resting_since_ns(&self) -> u64 {
        self.rested_at_ns.max(self.submitted_at_ns)
    }
}

/// An offer as the book keeps it: the public record plus what matching needs
/// to know of the provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BookOffer {
    /// The public offer.
    pub offer: Offer,
    /// The provider's stake (free plus bonded) when last read from the registry.
    pub provider_stake: Tokens,
    /// The provider's track record when last read from the registry.
    #[serde(default)]
    pub provider_record: TrackRecord,
}

impl BookOffer {
    fn free_slots(&self) -> u32 {
        self.offer.spec.slots.saturating_sub(self.offer.slots_used)
    }

    /// What the offer's prices are counted in.
    pub fn currency(&self) -> Currency {
        self.offer.spec.currency.unwrap_or_default()
    }

    /// The offer's price in `unit`.
    pub fn price(&self, unit: PriceUnit) -> Tokens {
        match unit {
            PriceUnit::Gfuel => self.offer.spec.price_per_gfuel,
            PriceUnit::Interval => self.offer.spec.price_per_interval,
        }
    }

    /// Whether this offer can run `bid` (price aside).
    pub fn can_run(&self, bid: &Bid) -> bool {
        let spec = &self.offer.spec;
        let fuel_fits = match bid.unit {
            PriceUnit::Gfuel => bid.deadline_secs.is_none_or(|d| {
                u128::from(spec.fuel_per_sec) * u128::from(d) >= u128::from(bid.fuel)
            }),
            PriceUnit::Interval => spec.max_fuel_per_interval >= bid.fuel,
        };
        spec.ledger == bid.ledger
            && self.currency() == bid.currency
            && self.free_slots() > 0
            && spec.memory_per_slot_mib >= bid.memory_mib
            && fuel_fits
            && (spec.min_interval_secs..=spec.max_interval_secs).contains(&bid.interval_secs)
            && self.provider_stake >= bid.min_provider_stake
            && bid
                .min_record
                .as_ref()
                .is_none_or(|r| record_may_meet(&self.provider_record, r))
            && !bid.excluded_providers.contains(&self.offer.provider)
            && !(bid.audit_pick.is_some() && spec.audits == Some(false))
    }
}

/// Whether `record` meets the counts `req` asks for. The requirement's
/// time-bound part (no failed audit lately) is checked by the registry
/// against the current record when it bonds the stake; a provider it
/// refuses is passed over for the job.
fn record_may_meet(record: &TrackRecord, req: &RecordRequirement) -> bool {
    let counts_only = RecordRequirement {
        no_failed_audit_within_secs: None,
        ..req.clone()
    };
    record.meets(&counts_only, 0)
}

/// Book depth of one ledger, best prices first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Depth {
    /// Resting bids per price, highest first.
    pub bids: Vec<PriceLevel>,
    /// Free offer slots per price, lowest first.
    pub asks: Vec<PriceLevel>,
}

/// Which book: a ledger and a code for the price unit and currency (see
/// [`book_code`]).
type Market = (Principal, u8);
type OfferKey = (Market, Tokens, (u64, OfferId));
/// Where a resting bid sits in the price order: ledger and unit, price
/// (highest first), then age.
pub type BidKey = (Market, Reverse<Tokens>, (u64, JobId));

/// The book of a price unit and currency: prices in tokens keep the codes
/// they had before XDR prices (0 and 1), so the books in stable memory read
/// the same; XDR prices have their own (2 and 3).
pub fn book_code(unit: PriceUnit, currency: Currency) -> u8 {
    let unit = match unit {
        PriceUnit::Gfuel => 0,
        PriceUnit::Interval => 1,
    };
    match currency {
        Currency::Token => unit,
        Currency::Xdr => unit + 2,
    }
}

const UNITS: [PriceUnit; 2] = [PriceUnit::Gfuel, PriceUnit::Interval];

/// The order book over four stable maps.
pub struct Book<M: Memory> {
    offers: StableBTreeMap<OfferId, Cbor<BookOffer>, M>,
    /// Offers with a free slot, by ledger and unit (each offer stands in
    /// both), then price ascending, then age.
    offers_by_price: StableBTreeMap<OfferKey, (), M>,
    bids: StableBTreeMap<JobId, Cbor<Bid>, M>,
    /// Resting bids by ledger, then price descending, then age.
    bids_by_price: StableBTreeMap<BidKey, (), M>,
}

fn offer_key(o: &BookOffer, unit: PriceUnit) -> OfferKey {
    (
        (o.offer.spec.ledger, book_code(unit, o.currency())),
        o.price(unit),
        (o.offer.created_at_ns, o.offer.id),
    )
}

fn bid_key(b: &Bid) -> BidKey {
    (
        (b.ledger, book_code(b.unit, b.currency)),
        Reverse(b.max_price),
        (b.submitted_at_ns, b.job_id),
    )
}

impl<M: Memory> Book<M> {
    /// Opens the book kept in these four memories.
    pub fn init(offers: M, offers_by_price: M, bids: M, bids_by_price: M) -> Self {
        Self {
            offers: StableBTreeMap::init(offers),
            offers_by_price: StableBTreeMap::init(offers_by_price),
            bids: StableBTreeMap::init(bids),
            bids_by_price: StableBTreeMap::init(bids_by_price),
        }
    }

    /// An offer by id.
    pub fn offer(&self, id: OfferId) -> Option<BookOffer> {
        self.offers.get(&id).map(|c| c.0)
    }

    /// A resting bid by job id.
    pub fn bid(&self, job_id: JobId) -> Option<Bid> {
        self.bids.get(&job_id).map(|c| c.0)
    }

    /// The id the next new offer gets.
    pub fn next_offer_id(&self) -> OfferId {
        self.offers.last_key_value().map_or(1, |(k, _)| k + 1)
    }

    /// Every offer, by id.
    pub fn offers(&self) -> impl Iterator<Item = BookOffer> + '_ {
        self.offers.values().map(|c| c.0)
    }

    /// Number of offers (with or without free slots).
    pub fn offer_count(&self) -> u64 {
        self.offers.len()
    }

    /// Number of resting bids.
    pub fn bid_count(&self) -> u64 {
        self.bids.len()
    }

    /// Adds or replaces an offer, keeping its index entry right.
    pub fn put_offer(&mut self, offer: BookOffer) {
        for unit in UNITS {
            if let Some(old) = self.offers.get(&offer.offer.id) {
                self.offers_by_price.remove(&offer_key(&old.0, unit));
            }
            if offer.free_slots() > 0 {
                self.offers_by_price.insert(offer_key(&offer, unit), ());
            }
        }
        self.offers.insert(offer.offer.id, Cbor(offer));
    }

    /// Removes an offer; returns it.
    pub fn remove_offer(&mut self, id: OfferId) -> Option<BookOffer> {
        let old = self.offers.remove(&id)?.0;
        for unit in UNITS {
            self.offers_by_price.remove(&offer_key(&old, unit));
        }
        Some(old)
    }

    /// Takes one slot of an offer for a job. Returns false (changing nothing)
    /// if the offer is gone or full.
    pub fn take_slot(&mut self, id: OfferId) -> bool {
        let Some(mut o) = self.offer(id) else {
            return false;
        };
        if o.free_slots() == 0 {
            return false;
        }
        o.offer.slots_used += 1;
        self.put_offer(o);
        true
    }

    /// Gives back one slot of an offer (a job on it ended). A slot of a
    /// withdrawn offer simply disappears.
    pub fn free_slot(&mut self, id: OfferId) {
        if let Some(mut o) = self.offer(id) {
            o.offer.slots_used = o.offer.slots_used.saturating_sub(1);
            self.put_offer(o);
        }
    }

    /// Puts a bid in the book to wait for capacity.
    pub fn rest_bid(&mut self, bid: Bid) {
        if let Some(old) = self.bids.get(&bid.job_id) {
            self.bids_by_price.remove(&bid_key(&old.0));
        }
        self.bids_by_price.insert(bid_key(&bid), ());
        self.bids.insert(bid.job_id, Cbor(bid));
    }

    /// Takes a bid out of the book; returns it.
    pub fn remove_bid(&mut self, job_id: JobId) -> Option<Bid> {
        let old = self.bids.remove(&job_id)?.0;
        self.bids_by_price.remove(&bid_key(&old));
        Some(old)
    }

    /// The offer for `bid`, if any within [`MAX_SCAN`] candidates: the
    /// cheapest eligible one (ties: oldest); for an audit run, one of the
    /// [`AUDIT_CANDIDATES`] cheapest eligible ones picked by its random
    /// number, so that no provider can make sure it audits a given
    /// provider's results by undercutting the others.
    pub fn best_offer_for(&self, bid: &Bid) -> Option<BookOffer> {
        let market = (bid.ledger, book_code(bid.unit, bid.currency));
        let start: OfferKey = (market, 0, (0, 0));
        let end: OfferKey = (market, bid.max_price, (u64::MAX, u64::MAX));
        let mut eligible = self
            .offers_by_price
            .keys_range(start..=end)
            .take(MAX_SCAN)
            .filter_map(|(_, _, (_, id))| self.offer(id))
            .filter(|o| o.can_run(bid));
        let Some(pick) = bid.audit_pick else {
            return eligible.next();
        };
        let mut candidates: Vec<BookOffer> = eligible.take(AUDIT_CANDIDATES).collect();
        if candidates.is_empty() {
            return None;
        }
        let i = (pick % candidates.len() as u64) as usize;
        Some(candidates.swap_remove(i))
    }

    /// The resting bids `offer` should serve now, best first: one-off
    /// jobs' bids, then reserved slots' (the sweep of resting bids keeps
    /// the second from waiting for good); in each book highest price first
    /// (ties: oldest), only bids paying at least the offer's price in that
    /// unit, as many as it has free slots, looking at most at [`MAX_SCAN`]
    /// bids per book.
    pub fn bids_for(&self, offer: &BookOffer) -> Vec<Bid> {
        let mut slots = offer.free_slots() as usize;
        let mut chosen = Vec::new();
        for unit in UNITS {
            let market = (offer.offer.spec.ledger, book_code(unit, offer.currency()));
            let start: BidKey = (market, Reverse(Tokens::MAX), (0, 0));
            let end: BidKey = (market, Reverse(offer.price(unit)), (u64::MAX, u64::MAX));
            for (_, _, (_, job_id)) in self.bids_by_price.keys_range(start..=end).take(MAX_SCAN) {
                if slots == 0 {
                    return chosen;
                }
                if let Some(bid) = self.bid(job_id)
                    && offer.can_run(&bid)
                {
                    chosen.push(bid);
                    slots -= 1;
                }
            }
        }
        chosen
    }

    /// Whether any offer has a free slot (on any ledger).
    pub fn has_free_slots(&self) -> bool {
        !self.offers_by_price.is_empty()
    }

    /// Up to `limit` resting bids in price order (per ledger, highest price
    /// first, then oldest), strictly after `after`.
    pub fn resting_bids_after(&self, after: Option<BidKey>, limit: usize) -> Vec<(BidKey, JobId)> {
        use std::ops::Bound;
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        self.bids_by_price
            .keys_range((lower, Bound::Unbounded))
            .take(limit)
            .map(|k| (k, k.2.1))
            .collect()
    }

    /// Number of resting bids and free offer slots per price in `unit`
    /// (in tokens) for a ledger, best prices first, at most `levels` of
    /// each.
    pub fn depth(&self, ledger: Principal, unit: PriceUnit, levels: usize) -> Depth {
        self.depth_in(ledger, unit, Currency::Token, levels)
    }

    /// Like [`Book::depth`], for prices in `currency`.
    pub fn depth_in(
        &self,
        ledger: Principal,
        unit: PriceUnit,
        currency: Currency,
        levels: usize,
    ) -> Depth {
        let market = (ledger, book_code(unit, currency));
        fn collect(it: impl Iterator<Item = (Tokens, u64)>, levels: usize) -> Vec<PriceLevel> {
            let mut out: Vec<PriceLevel> = Vec::new();
            for (price, n) in it {
                if let Some(level) = out.last_mut()
                    && level.price == price
                {
                    level.count += n;
                } else if out.len() == levels {
                    break;
                } else {
                    out.push(PriceLevel { price, count: n });
                }
            }
            out
        }
        let bids = collect(
            self.bids_by_price
                .keys_range(
                    (market, Reverse(Tokens::MAX), (0, 0))
                        ..=(market, Reverse(0), (u64::MAX, u64::MAX)),
                )
                .map(|(_, Reverse(price), _)| (price, 1)),
            levels,
        );
        let asks = collect(
            self.offers_by_price
                .keys_range((market, 0, (0, 0))..=(market, Tokens::MAX, (u64::MAX, u64::MAX)))
                .filter_map(|(_, price, (_, id))| {
                    self.offer(id).map(|o| (price, o.free_slots() as u64))
                }),
            levels,
        );
        Depth { bids, asks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;
    use market_api::matcher::OfferSpec;
    use proptest::prelude::*;

    fn book() -> Book<VectorMemory> {
        Book::init(
            VectorMemory::default(),
            VectorMemory::default(),
            VectorMemory::default(),
            VectorMemory::default(),
        )
    }

    fn ledger(n: u8) -> Principal {
        Principal::from_slice(&[0xAA, n])
    }

    fn offer(
        id: OfferId,
        ledger_n: u8,
        price: Tokens,
        slots: u32,
        memory: u32,
        age: u64,
    ) -> BookOffer {
        BookOffer {
            offer: Offer {
                id,
                provider: Principal::from_slice(&[0xBB, (id % 7) as u8]),
                spec: OfferSpec {
                    currency: None,
                    slots,
                    memory_per_slot_mib: memory,
                    max_fuel_per_interval: 1_000_000,
                    price_per_gfuel: price,
                    fuel_per_sec: 1_000,
                    // The other book's price differs, so a search in the
                    // wrong book shows.
                    price_per_interval: price + 3,
                    ledger: ledger(ledger_n),
                    min_interval_secs: 10,
                    max_interval_secs: 600,
                    tags: vec![],
                    audits: None,
                },
                slots_used: 0,
                created_at_ns: age,
            },
            provider_stake: 1_000,
            provider_record: TrackRecord::default(),
        }
    }

    /// A one-off job's bid (per billion fuel); odd ids in the property
    /// test bid per interval instead.
    fn bid(job_id: JobId, ledger_n: u8, max_price: Tokens, memory: u32, age: u64) -> Bid {
        Bid {
            job_id,
            ledger: ledger(ledger_n),
            unit: PriceUnit::Gfuel,
            max_price,
            currency: Currency::Token,
            memory_mib: memory,
            fuel: 1_000,
            deadline_secs: None,
            interval_secs: 60,
            min_provider_stake: 0,
            min_record: None,
            excluded_providers: vec![],
            audit_pick: None,
            submitted_at_ns: age,
            rested_at_ns: age,
        }
    }

    #[test]
    fn cheapest_then_oldest_offer_wins() {
        let mut b = book();
        b.put_offer(offer(1, 0, 50, 1, 512, 3));
        b.put_offer(offer(2, 0, 40, 1, 512, 5));
        b.put_offer(offer(3, 0, 40, 1, 512, 4));
        b.put_offer(offer(4, 1, 10, 1, 512, 1)); // other ledger
        b.put_offer(offer(5, 0, 30, 1, 64, 1)); // too little memory
        let best = b.best_offer_for(&bid(9, 0, 45, 256, 0)).unwrap();
        assert_eq!(best.offer.id, 3);
        assert!(b.take_slot(3));
        assert!(!b.take_slot(3), "a full offer gives no more slots");
        assert_eq!(
            b.best_offer_for(&bid(9, 0, 45, 256, 0)).unwrap().offer.id,
            2
        );
        assert!(b.best_offer_for(&bid(9, 0, 39, 256, 0)).is_none());
        b.free_slot(3);
        assert_eq!(
            b.best_offer_for(&bid(9, 0, 45, 256, 0)).unwrap().offer.id,
            3
        );
    }

    #[test]
    fn a_bid_asking_for_a_track_record_passes_over_offers_without_one() {
        let mut b = book();
        b.put_offer(offer(1, 0, 10, 1, 512, 0));
        let mut seasoned = offer(2, 0, 20, 1, 512, 1);
        seasoned.provider_record.jobs_completed = 5;
        b.put_offer(seasoned);
        let mut want = bid(1, 0, 100, 1, 0);
        want.min_record = Some(RecordRequirement {
            min_jobs_completed: 5,
            ..Default::default()
        });
        assert_eq!(b.best_offer_for(&want).unwrap().offer.id, 2);
        want.min_record = Some(RecordRequirement {
            min_jobs_completed: 5,
            max_deadlines_missed: Some(0),
            ..Default::default()
        });
        let mut missed = b.offer(2).unwrap();
        missed.provider_record.deadlines_missed = 1;
        b.put_offer(missed);
        assert!(b.best_offer_for(&want).is_none());
    }

    #[test]
    fn a_bid_deadline_passes_over_offers_too_slow_for_its_budget() {
        let mut b = book();
        b.put_offer(offer(1, 0, 10, 1, 512, 0)); // 1,000 fuel a second
        let mut want = bid(1, 0, 100, 1, 0);
        want.fuel = 10_000;
        want.deadline_secs = Some(9);
        assert!(b.best_offer_for(&want).is_none(), "10 s of work in 9 s");
        want.deadline_secs = Some(10);
        assert_eq!(b.best_offer_for(&want).unwrap().offer.id, 1);
    }

    #[test]
    fn excluded_provider_is_skipped() {
        let mut b = book();
        let o = offer(1, 0, 10, 1, 512, 0);
        let provider = o.offer.provider;
        b.put_offer(o);
        let mut want = bid(1, 0, 100, 1, 0);
        want.excluded_providers.push(provider);
        assert!(b.best_offer_for(&want).is_none());
    }

    #[test]
    fn resting_bids_are_served_highest_price_first() {
        let mut b = book();
        b.rest_bid(bid(1, 0, 20, 1, 1));
        b.rest_bid(bid(2, 0, 30, 1, 2));
        b.rest_bid(bid(3, 0, 30, 1, 1));
        b.rest_bid(bid(4, 0, 5, 1, 0)); // below the offer's price
        b.rest_bid(bid(5, 1, 99, 1, 0)); // other ledger
        let o = offer(1, 0, 10, 2, 512, 0);
        let served: Vec<_> = b.bids_for(&o).into_iter().map(|b| b.job_id).collect();
        assert_eq!(served, vec![3, 2]);
        let depth = b.depth(ledger(0), PriceUnit::Gfuel, 10);
        let levels: Vec<_> = depth.bids.iter().map(|l| (l.price, l.count)).collect();
        assert_eq!(levels, vec![(30, 2), (20, 1), (5, 1)]);
        assert!(depth.asks.is_empty());
        assert!(b.depth(ledger(0), PriceUnit::Interval, 10).bids.is_empty());
        assert_eq!(b.remove_bid(3).map(|b| b.job_id), Some(3));
        assert_eq!(b.bid_count(), 4);
    }

    #[derive(Debug, Clone)]
    enum Op {
        PutOffer {
            id: u64,
            ledger: u8,
            price: u8,
            slots: u8,
            memory: u8,
            age: u8,
        },
        RemoveOffer(u64),
        Take(u64),
        Free(u64),
        RestBid {
            id: u64,
            ledger: u8,
            price: u8,
            memory: u8,
            age: u8,
        },
        RemoveBid(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..12, 0u8..2, 1u8..20, 0u8..3, 1u8..8, 0u8..50).prop_map(
                |(id, ledger, price, slots, memory, age)| {
                    Op::PutOffer {
                        id,
                        ledger,
                        price,
                        slots,
                        memory,
                        age,
                    }
                }
            ),
            (0u64..12).prop_map(Op::RemoveOffer),
            (0u64..12).prop_map(Op::Take),
            (0u64..12).prop_map(Op::Free),
            (0u64..12, 0u8..2, 1u8..20, 1u8..8, 0u8..50).prop_map(
                |(id, ledger, price, memory, age)| Op::RestBid {
                    id,
                    ledger,
                    price,
                    memory,
                    age
                }
            ),
            (0u64..12).prop_map(Op::RemoveBid),
        ]
    }

    proptest! {
        /// After any sequence of changes, the book's searches agree with a
        /// brute-force reading of the matching rule.
        #[test]
        fn searches_agree_with_brute_force(ops in proptest::collection::vec(op(), 1..60)) {
            let mut b = book();
            let mut offers: std::collections::BTreeMap<u64, BookOffer> = Default::default();
            let mut bids: std::collections::BTreeMap<u64, Bid> = Default::default();
            for op in ops {
                match op {
                    Op::PutOffer { id, ledger, price, slots, memory, age } => {
                        let o = offer(id, ledger, price as Tokens, slots as u32, memory as u32, age as u64);
                        b.put_offer(o.clone());
                        offers.insert(id, o);
                    }
                    Op::RemoveOffer(id) => {
                        prop_assert_eq!(b.remove_offer(id), offers.remove(&id));
                    }
                    Op::Take(id) => {
                        let expect = offers.get(&id).is_some_and(|o| o.free_slots() > 0);
                        prop_assert_eq!(b.take_slot(id), expect);
                        if expect { offers.get_mut(&id).unwrap().offer.slots_used += 1; }
                    }
                    Op::Free(id) => {
                        b.free_slot(id);
                        if let Some(o) = offers.get_mut(&id) {
                            o.offer.slots_used = o.offer.slots_used.saturating_sub(1);
                        }
                    }
                    Op::RestBid { id, ledger, price, memory, age } => {
                        let mut x = bid(id, ledger, price as Tokens, memory as u32, age as u64);
                        if id % 2 == 1 {
                            x.unit = PriceUnit::Interval;
                        }
                        b.rest_bid(x.clone());
                        bids.insert(id, x);
                    }
                    Op::RemoveBid(id) => {
                        prop_assert_eq!(b.remove_bid(id), bids.remove(&id));
                    }
                }
                prop_assert_eq!(b.offer_count(), offers.len() as u64);
                prop_assert_eq!(b.bid_count(), bids.len() as u64);
                for x in bids.values() {
                    let want = offers
                        .values()
                        .filter(|o| o.can_run(x) && o.price(x.unit) <= x.max_price)
                        .min_by_key(|o| (o.price(x.unit), o.offer.created_at_ns, o.offer.id))
                        .map(|o| o.offer.id);
                    prop_assert_eq!(b.best_offer_for(x).map(|o| o.offer.id), want);
                }
                for o in offers.values() {
                    let mut want: Vec<&Bid> = bids
                        .values()
                        .filter(|x| o.can_run(x) && x.max_price >= o.price(x.unit))
                        .collect();
                    want.sort_by_key(|x| (x.unit, Reverse(x.max_price), x.submitted_at_ns, x.job_id));
                    want.truncate(o.free_slots() as usize);
                    let want: Vec<u64> = want.into_iter().map(|x| x.job_id).collect();
                    let got: Vec<u64> = b.bids_for(o).into_iter().map(|x| x.job_id).collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}

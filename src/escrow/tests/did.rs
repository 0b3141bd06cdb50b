market_artifacts::canister_interface_tests!(
    escrow,
    &canister_common::ingress::methods(escrow::ingress::RULES)
);

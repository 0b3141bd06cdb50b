market_artifacts::canister_interface_tests!(
    matcher,
    &canister_common::ingress::methods(matcher::ingress::RULES)
);

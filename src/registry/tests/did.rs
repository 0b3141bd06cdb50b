market_artifacts::canister_interface_tests!(
    registry,
    &canister_common::ingress::methods(registry::ingress::RULES)
);

market_artifacts::canister_interface_tests!(
    explorer,
    &canister_common::ingress::methods(explorer::ingress::RULES)
);

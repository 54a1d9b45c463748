//! The metric names the component crates record must be the monitor's catalog's: they
//! cannot depend on the monitor, so this test ties each to its catalog entry.

#[test]
fn component_metric_names_are_the_catalogs() {
    use monitor::names as m;
    let pairs = [
        (irq_router::names::IRQ_TRIGGERS, m::IRQ_TRIGGERS),
        (irq_router::names::MSI_ROUTE_UPDATES, m::MSI_ROUTE_UPDATES),
        (irq_router::names::IRQ_ROUTE_GSI, m::IRQ_ROUTE_GSI),
        (irq_router::names::IRQ_ROUTE_DEST, m::IRQ_ROUTE_DEST),
        (irq_router::names::IRQ_ROUTE_MASKED, m::IRQ_ROUTE_MASKED),
        (hypercall_gw::HYPERCALLS, m::HYPERCALLS),
        (hypercall_gw::HYPERCALL_SECONDS, m::HYPERCALL_SECONDS),
    ];
    for (component, catalog) in pairs {
        assert_eq!(component, catalog);
        assert!(
            monitor::CATALOG.iter().any(|(name, ..)| *name == catalog),
            "{catalog} is not in the catalog"
        );
    }
}

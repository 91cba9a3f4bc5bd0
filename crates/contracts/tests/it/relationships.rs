use crate::harness::*;
use medrec_contracts::Relationships;

#[test]
fn smoke() {
    let mut c = Cast::new().accepted();
    let r = c.grant(c.viewer, 1, 3600);
    assert_eq!(r.event_names(), vec!["ViewerGranted"]);
    let v = c.viewer;
    assert!(c.can_view(v, 0));
    let e: Relationships::ViewerGranted = r.event();
    assert_eq!(e.viewer, v);
}

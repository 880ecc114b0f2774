use linectl::vision::*;
#[test]
#[ignore]
fn debug_grades() {
    for f in std::env::var("FRAMES").unwrap().split(',') {
        let frame = GreyFrame::load(std::path::Path::new(f), FrameLimits::default()).unwrap();
        let mut d = Decoder::new(DecodeConfig::default());
        for pass in d.passes().collect::<Vec<_>>() {
            let t = std::time::Instant::now();
            let r = d.decode_pass(&frame, pass).unwrap();
            println!("{f} {pass:?} {:?} {:.2}ms", r.as_ref().map(|r| &r.grade), t.elapsed().as_secs_f64()*1e3);
        }
    }
}

//! The simulated case packer's layers read back through linectl's multi-symbol decoder,
//! and the full line + aggregation run with injected faults.

use hil_sim::aggregation::{Slot, render_layer};
use linectl::aggregation::detect::{CellRead, LayerDecoder};
use linectl::profile::aggregation::LayoutSection;

fn layout() -> LayoutSection {
    LayoutSection {
        rows: 10,
        cols: 12,
        x: 0,
        y: 0,
        width: 2448,
        height: 2048,
    }
}

fn code(i: usize) -> String {
    format!("0109506000134352\u{1d}21S{i:011}\u{1d}10EU24A001\u{1d}17281231")
}

#[test]
fn a_full_layer_reads_back_cell_by_cell_with_faults_in_place() {
    let mut slots: Vec<Slot> = (0..120).map(|i| Slot::Code(code(i))).collect();
    slots[7] = Slot::Damaged(code(7));
    slots[50] = Slot::Empty;
    let f = render_layer(2448, 2048, &layout(), &slots, 42).unwrap();
    let t0 = std::time::Instant::now();
    let reads = LayerDecoder::new()
        .decode(&f.pixels, f.width, f.height, &layout())
        .unwrap();
    eprintln!("decoded 120 cells in {:?}", t0.elapsed());
    assert_eq!(reads.len(), 120);
    for (i, r) in reads.iter().enumerate() {
        let want = match i {
            7 => CellRead::Unreadable,
            50 => CellRead::Empty,
            _ => CellRead::Code(code(i)),
        };
        assert_eq!(r.read, want, "cell {i} at row {} col {}", r.cell.row, r.cell.col);
    }
}

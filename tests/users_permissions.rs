//! Every role × permission: the table in `src/users/role.rs`'s documentation is read
//! from the source file and compared with `Role::may`, and each cell is exercised
//! through a real login and `Users::authorize`, so the documented table, the decision
//! function and the server-side check agree.

mod users_support;

use std::collections::BTreeMap;

use linectl::audit::Action;
use linectl::users::{AuthError, Permission, Role};
use users_support::*;

/// The table as documented: permission → [operator, supervisor, qa, admin].
fn documented_table() -> BTreeMap<String, [bool; 4]> {
    let src = include_str!("../src/users/role.rs");
    let mut table = BTreeMap::new();
    for line in src.lines() {
        let Some(row) = line.strip_prefix("//! | `") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 6, "bad table row: {line}");
        let name = cells[0].trim_end_matches('`').to_string();
        let mut allowed = [false; 4];
        for (i, cell) in cells[1..5].iter().enumerate() {
            allowed[i] = match *cell {
                "yes" => true,
                "no" => false,
                other => panic!("cell {other:?} in row {name}"),
            };
        }
        assert!(
            table.insert(name.clone(), allowed).is_none(),
            "{name} twice"
        );
    }
    table
}

#[test]
fn the_documented_table_covers_every_permission_and_matches_may() {
    let table = documented_table();
    assert_eq!(table.len(), Permission::ALL.len());
    for p in Permission::ALL {
        let row = table
            .get(p.as_str())
            .unwrap_or_else(|| panic!("{p} not in the documented table"));
        for (i, r) in Role::ALL.into_iter().enumerate() {
            assert_eq!(
                r.may(p),
                row[i],
                "{r} × {p}: code and documentation disagree"
            );
        }
    }
}

#[test]
fn the_server_checks_every_role_and_permission() {
    let e = env();
    let table = documented_table();
    let names = [
        ("op", Role::Operator),
        ("sup", Role::Supervisor),
        ("qa", Role::Qa),
        ("admin", Role::Admin),
    ];
    let mut denials = 0;
    for (i, (name, role)) in names.into_iter().enumerate() {
        let s = e.users.login(name, PW).unwrap();
        for p in Permission::ALL {
            let expected = table[p.as_str()][i];
            match e.users.authorize(&s.token, p) {
                Ok(actor) => {
                    assert!(expected, "{role} was allowed {p}");
                    assert_eq!(actor.user(), name);
                    assert!(actor.may(p));
                    assert_eq!(actor.role_name(), role.as_str());
                }
                Err(AuthError::Forbidden {
                    role: r,
                    permission,
                }) => {
                    assert!(!expected, "{role} was refused {p}");
                    assert_eq!((r, permission), (role, p));
                    denials += 1;
                }
                Err(other) => panic!("{role} × {p}: {other}"),
            }
        }
    }
    let recorded = e
        .records()
        .iter()
        .filter(|r| r.action == Action::AccessDenied)
        .count();
    assert_eq!(recorded, denials);
    assert!(denials > 0);
}

#[test]
fn the_console_may_only_administer_users_and_read_the_audit_trail() {
    let console = linectl::users::Actor::console("root");
    for p in Permission::ALL {
        let expected = matches!(
            p,
            Permission::ManageUsers | Permission::ViewAudit | Permission::ExportAudit
        );
        assert_eq!(console.may(p), expected, "console × {p}");
    }
    assert_eq!(console.user(), "console:root");
}

//! Users and sessions through the public API, on real files and a virtual clock:
//! wrong passwords, lock-out (timed, until unlocked, persisted across restarts),
//! session idle and absolute timeouts, live role and account checks, second-person
//! e-signature rules, administration rules, and that every change is in the audit
//! trail.

mod users_support;

use std::time::Duration;

use linectl::audit::{Action, Entry, Meaning};
use linectl::users::{
    Actor, AuthError, ESignError, Lockout, LoginError, Permission, Role, UsersConfig, UsersError,
};
use users_support::*;

fn admin(e: &Env) -> Actor {
    let s = e.users.login("admin", PW).unwrap();
    e.users
        .authorize(&s.token, Permission::ManageUsers)
        .unwrap()
}

#[test]
fn wrong_password_and_unknown_user_look_the_same_and_are_recorded() {
    let e = env();
    let before = e.records().len();
    let a = e.users.login("op", "wrong-password").unwrap_err();
    let b = e.users.login("nobody", "wrong-password").unwrap_err();
    assert!(matches!(a, LoginError::InvalidCredentials), "{a}");
    assert!(matches!(b, LoginError::InvalidCredentials), "{b}");
    assert_eq!(a.to_string(), b.to_string());
    let recs = e.records();
    let new = &recs[before..];
    assert_eq!(new.len(), 2);
    assert_eq!(new[0].action, Action::LoginFailed);
    assert_eq!(new[0].user, "op");
    assert!(
        new[0].detail.contains("wrong password (1 of 5"),
        "{}",
        new[0].detail
    );
    assert_eq!(new[1].detail, "unknown user");
    // The right password still works and clears the count.
    let s = e.users.login("op", PW).unwrap();
    assert_eq!(s.role, Role::Operator);
    let last = e.records().pop().unwrap();
    assert_eq!(last.action, Action::Login);
    assert!(
        last.detail.contains("1 earlier failed logins cleared"),
        "{}",
        last.detail
    );
}

#[test]
fn five_failures_lock_for_the_configured_time_even_across_restarts() {
    let e = env();
    for i in 1..=4 {
        let err = e.users.login("sup", "nope-nope-nope").unwrap_err();
        assert!(
            matches!(err, LoginError::InvalidCredentials),
            "attempt {i}: {err}"
        );
    }
    let err = e.users.login("sup", "nope-nope-nope").unwrap_err();
    let until = T0 + 15 * 60 * 1_000_000;
    assert!(
        matches!(err, LoginError::Locked { until_us: Some(t) } if t == until),
        "{err}"
    );
    assert!(err.to_string().contains("2023-11-14T22:28:20"), "{err}");
    // The right password does not help while locked.
    assert!(matches!(
        e.users.login("sup", PW),
        Err(LoginError::Locked { .. })
    ));
    let actions = e.actions_since(0);
    assert_eq!(actions.iter().filter(|a| *a == "account_locked").count(), 1);

    // A restart keeps the lock.
    let Env {
        dir,
        clock,
        audit,
        users,
    } = e;
    drop(users);
    let users = open_users(dir.path(), &clock, &audit, fast_config());
    assert!(matches!(
        users.login("sup", PW),
        Err(LoginError::Locked { .. })
    ));
    clock.advance(Duration::from_secs(15 * 60));
    let s = users.login("sup", PW).unwrap();
    assert_eq!(s.user, "sup");
    // The count started again: one wrong password does not re-lock.
    assert!(matches!(
        users.login("sup", "nope-nope-nope"),
        Err(LoginError::InvalidCredentials)
    ));
}

#[test]
fn until_unlocked_needs_an_administrator() {
    let e = env_with(UsersConfig {
        max_failed_logins: 3,
        lockout: Lockout::UntilUnlocked,
        ..fast_config()
    });
    for _ in 0..3 {
        let _ = e.users.login("op", "bad-bad-bad-bad");
    }
    assert!(matches!(
        e.users.login("op", PW),
        Err(LoginError::Locked { until_us: None })
    ));
    e.clock.advance(Duration::from_secs(30 * 24 * 3600));
    assert!(matches!(
        e.users.login("op", PW),
        Err(LoginError::Locked { until_us: None })
    ));
    let adm = admin(&e);
    let info = e.users.list(&adm).unwrap();
    assert!(info.iter().any(|u| u.name == "op" && u.locked.is_some()));
    // An operator may not unlock; the admin may, with a reason.
    let op_actor = {
        let s = e.users.login("sup", PW).unwrap();
        e.users.authorize(&s.token, Permission::ViewLine).unwrap()
    };
    assert!(matches!(
        e.users.unlock(&op_actor, "op", "please"),
        Err(UsersError::Forbidden { .. })
    ));
    assert!(matches!(
        e.users.unlock(&adm, "op", " "),
        Err(UsersError::ReasonRequired(_))
    ));
    assert!(
        e.users
            .unlock(&adm, "op", "identity checked by phone")
            .unwrap()
    );
    assert!(!e.users.unlock(&adm, "op", "again").unwrap());
    e.users.login("op", PW).unwrap();
    let rec = e
        .records()
        .into_iter()
        .find(|r| r.action == Action::AccountUnlocked)
        .unwrap();
    assert_eq!(rec.user, "admin");
    assert_eq!(rec.object, "user:op");
    assert_eq!(rec.reason, "identity checked by phone");
    assert!(rec.old_value.unwrap().contains("locked until unlocked"));
}

#[test]
fn sessions_time_out_when_idle_and_after_the_maximum() {
    let e = env_with(UsersConfig {
        idle_timeout_secs: 600,
        max_session_secs: 3600,
        ..fast_config()
    });
    let s = e.users.login("op", PW).unwrap();
    assert_eq!(s.idle_timeout, Duration::from_secs(600));
    // Requests every 9 minutes keep it alive...
    for _ in 0..6 {
        e.clock.advance(Duration::from_secs(540));
        e.users.authorize(&s.token, Permission::ViewLine).unwrap();
    }
    // ...until an hour after login.
    e.clock.advance(Duration::from_secs(540));
    assert!(matches!(
        e.users.authorize(&s.token, Permission::ViewLine),
        Err(AuthError::Expired)
    ));
    assert!(matches!(
        e.users.authorize(&s.token, Permission::ViewLine),
        Err(AuthError::NoSession)
    ));
    // Idle: ten minutes without a request.
    let s = e.users.login("op", PW).unwrap();
    e.clock.advance(Duration::from_secs(599));
    e.users.authorize(&s.token, Permission::ViewLine).unwrap();
    e.clock.advance(Duration::from_secs(600));
    assert!(matches!(
        e.users.authorize(&s.token, Permission::ViewLine),
        Err(AuthError::Expired)
    ));
    let expired = e
        .records()
        .iter()
        .filter(|r| r.action == Action::SessionExpired)
        .count();
    assert_eq!(expired, 2);
    // Logged out and forged tokens are not sessions.
    let s = e.users.login("op", PW).unwrap();
    e.users.logout(&s.token).unwrap();
    assert!(matches!(
        e.users.authorize(&s.token, Permission::ViewLine),
        Err(AuthError::NoSession)
    ));
    let forged = linectl::users::SessionToken::from_client(&"0".repeat(64));
    assert!(matches!(
        e.users.authorize(&forged, Permission::ViewLine),
        Err(AuthError::NoSession)
    ));
}

#[test]
fn authorization_follows_role_and_account_changes_at_once() {
    let e = env();
    let adm = admin(&e);
    let s = e.users.login("sup", PW).unwrap();
    e.users
        .authorize(&s.token, Permission::ResolveException)
        .unwrap();
    e.users
        .set_role(&adm, "sup", Role::Operator, "moved to packing")
        .unwrap();
    let err = e
        .users
        .authorize(&s.token, Permission::ResolveException)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Forbidden {
                role: Role::Operator,
                permission: Permission::ResolveException
            }
        ),
        "{err}"
    );
    let denied = e.records().pop().unwrap();
    assert_eq!(denied.action, Action::AccessDenied);
    assert_eq!(denied.detail, "needs resolve_exception");
    e.users.disable(&adm, "sup", "left the company").unwrap();
    assert!(matches!(
        e.users.authorize(&s.token, Permission::ViewLine),
        Err(AuthError::AccountInactive | AuthError::NoSession)
    ));
    assert!(matches!(
        e.users.login("sup", PW),
        Err(LoginError::Disabled)
    ));
    e.users.enable(&adm, "sup", "rehired").unwrap();
    e.users.login("sup", PW).unwrap();
}

#[test]
fn e_signature_rules() {
    let e = env();
    let sup = {
        let s = e.users.login("sup", PW).unwrap();
        e.users
            .authorize(&s.token, Permission::ResolveException)
            .unwrap()
    };
    // Not oneself.
    assert!(matches!(
        e.users.e_sign(&sup, "sup", PW, Meaning::Approval),
        Err(ESignError::SameAsActor(_))
    ));
    // Not a role without the sign permission (operator, admin).
    assert!(matches!(
        e.users.e_sign(&sup, "op", PW, Meaning::Approval),
        Err(ESignError::NotPermitted(Role::Operator))
    ));
    assert!(matches!(
        e.users.e_sign(&sup, "admin", PW, Meaning::Approval),
        Err(ESignError::NotPermitted(Role::Admin))
    ));
    // Not with a wrong password or an unknown name.
    assert!(matches!(
        e.users
            .e_sign(&sup, "qa", "wrong-wrong-wrong", Meaning::Approval),
        Err(ESignError::InvalidCredentials)
    ));
    assert!(matches!(
        e.users.e_sign(&sup, "ghost", PW, Meaning::Approval),
        Err(ESignError::InvalidCredentials)
    ));
    e.clock.advance(Duration::from_secs(7));
    let sig = e
        .users
        .e_sign(&sup, "qa", PW, Meaning::Verification)
        .unwrap();
    assert_eq!(sig.signer, "qa");
    assert_eq!(sig.signer_role, "qa");
    assert_eq!(sig.meaning, Meaning::Verification);
    assert_eq!(sig.time_us, T0 + 7_000_000);
    let rec = e
        .audit
        .append(
            Entry::new(sup.audit_actor(), Action::ExceptionResolved, "exception:12")
                .reason("unit relabelled and re-inspected")
                .change(Some("open".into()), Some("resolved".into()))
                .signed(sig.clone()),
        )
        .unwrap();
    assert_eq!(rec.signature, Some(sig));
    assert_eq!(rec.user, "sup");
    assert_eq!(rec.role, "supervisor");
    let failed = e
        .records()
        .iter()
        .filter(|r| r.action == Action::ESignFailed)
        .count();
    assert_eq!(failed, 5);
    // Wrong e-sign passwords count towards the signer's lock-out.
    for _ in 0..4 {
        let _ = e
            .users
            .e_sign(&sup, "qa", "wrong-wrong-wrong", Meaning::Review);
    }
    assert!(matches!(
        e.users.e_sign(&sup, "qa", PW, Meaning::Review),
        Err(ESignError::Locked)
    ));
    assert!(matches!(
        e.users.login("qa", PW),
        Err(LoginError::Locked { .. })
    ));
    assert!(e.audit.verify().unwrap().is_clean());
}

#[test]
fn administration_rules() {
    let e = env();
    let adm = admin(&e);
    let op = {
        let s = e.users.login("op", PW).unwrap();
        e.users.authorize(&s.token, Permission::ViewLine).unwrap()
    };
    assert!(matches!(
        e.users.add_user(&op, "eve", Role::Admin, PW, "me"),
        Err(UsersError::Forbidden {
            permission: Permission::ManageUsers,
            ..
        })
    ));
    assert!(matches!(
        e.users.add_user(&adm, "op", Role::Qa, PW, "dup"),
        Err(UsersError::Exists(_))
    ));
    assert!(matches!(
        e.users.add_user(&adm, "Bad Name", Role::Qa, PW, "x"),
        Err(UsersError::BadName(_))
    ));
    let weak = e
        .users
        .add_user(&adm, "newbie", Role::Qa, "short", "x")
        .unwrap_err();
    assert!(weak.to_string().contains("at least 10"), "{weak}");
    assert!(matches!(
        e.users.add_user(&adm, "newbie", Role::Qa, PW, ""),
        Err(UsersError::ReasonRequired(_))
    ));
    // The last enabled admin can be neither demoted nor disabled.
    assert!(matches!(
        e.users.set_role(&adm, "admin", Role::Qa, "oops"),
        Err(UsersError::LastAdmin(_))
    ));
    assert!(matches!(
        e.users.disable(&adm, "admin", "oops"),
        Err(UsersError::LastAdmin(_))
    ));
    e.users
        .add_user(&adm, "admin2", Role::Admin, PW, "second admin")
        .unwrap();
    e.users
        .disable(&adm, "admin", "holiday cover test")
        .unwrap();

    // Own password: needs the current one; a wrong one is refused and counted.
    assert!(matches!(
        e.users
            .change_password(&op, "op", Some("not-it-at-all"), "new-pass-word-1", ""),
        Err(UsersError::WrongPassword)
    ));
    let failed = e.records().pop().unwrap();
    assert_eq!(failed.action, Action::LoginFailed);
    assert!(
        failed.detail.starts_with("password change: wrong password"),
        "{}",
        failed.detail
    );
    assert!(matches!(
        e.users
            .change_password(&op, "op", None, "new-pass-word-1", ""),
        Err(UsersError::WrongPassword)
    ));
    assert!(
        e.users
            .change_password(&op, "op", Some(PW), PW, "")
            .is_err()
    );
    e.users
        .change_password(&op, "op", Some(PW), "new-pass-word-1", "")
        .unwrap();
    assert!(matches!(
        e.users.login("op", PW),
        Err(LoginError::InvalidCredentials)
    ));
    let s = e.users.login("op", "new-pass-word-1").unwrap();
    // Someone else's password: only with manage_users; a reset ends their sessions.
    assert!(matches!(
        e.users
            .change_password(&op, "qa", None, "new-pass-word-2", "x"),
        Err(UsersError::Forbidden { .. })
    ));
    let console = Actor::console("root");
    e.users
        .change_password(&console, "op", None, "new-pass-word-3", "forgot it")
        .unwrap();
    assert!(matches!(
        e.users.authorize(&s.token, Permission::ViewLine),
        Err(AuthError::NoSession)
    ));
    let reset = e.records().pop().unwrap();
    assert_eq!(reset.action, Action::PasswordChanged);
    assert_eq!(reset.user, "console:root");
    assert_eq!(reset.role, "console");
    assert_eq!(reset.detail, "reset by console:root");
    assert_eq!(reset.old_value, None);
    assert_eq!(reset.new_value, None);
}

#[test]
fn every_change_is_audited_and_no_password_is_stored_or_recorded() {
    let e = env();
    let adm = admin(&e);
    let before = e.records().len();
    e.users
        .add_user(&adm, "dora", Role::Operator, "dora-secret-pw", "new hire")
        .unwrap();
    e.users
        .set_role(&adm, "dora", Role::Supervisor, "promoted")
        .unwrap();
    e.users.disable(&adm, "dora", "on leave").unwrap();
    e.users.enable(&adm, "dora", "back").unwrap();
    e.users
        .change_password(&adm, "dora", None, "dora-secret-pw2", "forgotten")
        .unwrap();
    assert_eq!(
        e.actions_since(before),
        vec![
            "user_added",
            "role_changed",
            "user_disabled",
            "user_enabled",
            "password_changed"
        ]
    );
    let recs = e.records();
    let role = &recs[before + 1];
    assert_eq!(
        (role.old_value.as_deref(), role.new_value.as_deref()),
        (Some("operator"), Some("supervisor"))
    );
    assert_eq!(role.reason, "promoted");
    assert_eq!(role.user, "admin");
    let users_file = std::fs::read_to_string(e.dir.path().join("users/users.json")).unwrap();
    let audit_file = std::fs::read_to_string(e.dir.path().join("audit/audit.log")).unwrap();
    for secret in ["dora-secret-pw", PW] {
        assert!(!users_file.contains(secret));
        assert!(!audit_file.contains(secret));
    }
    assert!(users_file.contains("$argon2id$"));
    // A fresh process sees the same accounts.
    let Env {
        dir,
        clock,
        audit,
        users,
    } = e;
    drop(users);
    let users = open_users(dir.path(), &clock, &audit, fast_config());
    let s = users.login("dora", "dora-secret-pw2").unwrap();
    assert_eq!(s.role, Role::Supervisor);
}

#[test]
fn a_second_process_cannot_open_the_store() {
    let e = env();
    let err = linectl::users::Users::open(
        e.dir.path(),
        fast_config(),
        std::sync::Arc::new(e.clock.clone()),
        e.audit.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, UsersError::InUse(_)), "{err}");
}

#[test]
fn bad_configuration_is_named() {
    let cfg = UsersConfig {
        max_failed_logins: 0,
        hashing: linectl::users::HashParams {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        },
        ..UsersConfig::default()
    };
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("max_failed_logins"), "{err}");
    assert!(err.contains("hashing"), "{err}");
    UsersConfig::default().validate().unwrap();
}

#[test]
fn a_deleted_audit_trail_is_noticed_by_the_user_store() {
    let Env {
        dir,
        clock,
        audit,
        users,
    } = env();
    drop(users);
    drop(audit);
    std::fs::remove_dir_all(dir.path().join("audit")).unwrap();
    let (fresh, _) =
        linectl::audit::AuditTrail::open(dir.path(), std::sync::Arc::new(clock.clone())).unwrap();
    let err = linectl::users::Users::open(
        dir.path(),
        fast_config(),
        std::sync::Arc::new(clock),
        std::sync::Arc::new(fresh),
    )
    .unwrap_err();
    assert!(matches!(err, UsersError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("truncated or replaced"), "{err}");
}

//! Provisioning (CONTRACT §7.1): merchants and users made, listed, re-keyed and removed,
//! by an admin through the API or by an operator with `hookd merchant|user`. The rules are
//! here once, for both; they take the store alone, so the CLI needs no running server.
//!
//! The one idea to know: an API key is shown once, when made (`user.create`,
//! `user.rotate_key`), and stored only as an argon2 hash. Re-keying a user replaces the hash
//! and deletes the user's sessions in one transaction, and every key check re-reads the
//! stored hash, so the old key and its sessions stop on every node at once.

use crate::domain::{ApiKey, MerchantCode, MerchantSummary, Role, UserName, UserRecord};
use crate::store::{Store, StoreError};

use super::AppError;

/// Most merchants one publisher may be limited to.
pub const MAX_MERCHANT_CODES: usize = 100;
/// Longest merchant display name, in characters.
pub const MAX_MERCHANT_NAME: usize = 200;

/// A user to create, before its fields are checked.
#[derive(Debug, Default)]
pub struct UserRequest {
    pub username: String,
    pub role: String,
    pub merchant_code: Option<String>,
    pub merchant_codes: Option<Vec<String>>,
}

fn invalid(detail: String) -> AppError {
    AppError::InvalidData(detail)
}

/// `merchant.create` / `hookd merchant add`.
pub async fn merchant_create(store: &dyn Store, code: &str, name: Option<&str>) -> Result<MerchantSummary, AppError> {
    let code = MerchantCode::parse(code).map_err(|e| invalid(format!("merchant_code: {e}")))?;
    if let Some(name) = name {
        let len = name.chars().count();
        if len == 0 || len > MAX_MERCHANT_NAME || name.chars().any(char::is_control) {
            return Err(invalid(format!(
                "name: must be 1 to {MAX_MERCHANT_NAME} characters, without control characters"
            )));
        }
    }
    match store.merchant_create(&code, name).await {
        Err(StoreError::Conflict(_)) => Err(AppError::Exists(format!(
            "A merchant with the code '{}' already exists.",
            code.as_str()
        ))),
        other => Ok(other?),
    }
}

/// The checked form of a `UserRequest`.
struct NewUser {
    name: UserName,
    role: Role,
    merchant: Option<MerchantCode>,
    merchant_codes: Vec<String>,
}

fn check_user(req: UserRequest) -> Result<NewUser, AppError> {
    let name = UserName::parse(&req.username).map_err(|e| invalid(format!("username: {e}")))?;
    let role = Role::parse(&req.role)
        .ok_or_else(|| invalid("role: must be 'admin', 'merchant' or 'publisher'".to_string()))?;
    let merchant = match (role, req.merchant_code) {
        (Role::Merchant, Some(code)) => {
            Some(MerchantCode::parse(&code).map_err(|e| invalid(format!("merchant_code: {e}")))?)
        }
        (Role::Merchant, None) => return Err(invalid("merchant_code: required for role 'merchant'".into())),
        (_, Some(_)) => {
            return Err(invalid(format!(
                "merchant_code: only a 'merchant' user has one (a publisher takes merchant_codes), not '{}'",
                role.as_str()
            )))
        }
        (_, None) => None,
    };
    let merchant_codes = match (role, req.merchant_codes) {
        (_, None) => Vec::new(),
        (Role::Publisher, Some(codes)) => {
            if codes.len() > MAX_MERCHANT_CODES {
                return Err(invalid(format!(
                    "merchant_codes: at most {MAX_MERCHANT_CODES} codes, {} given",
                    codes.len()
                )));
            }
            let mut checked: Vec<String> = Vec::with_capacity(codes.len());
            for code in codes {
                let code = MerchantCode::parse(&code).map_err(|e| invalid(format!("merchant_codes: {e}")))?;
                if checked.iter().any(|c| c == code.as_str()) {
                    return Err(invalid(format!("merchant_codes: '{}' is given twice", code.as_str())));
                }
                checked.push(code.as_str().to_string());
            }
            checked
        }
        (_, Some(_)) => {
            return Err(invalid(format!(
                "merchant_codes: only a 'publisher' user is limited to merchants, not '{}'",
                role.as_str()
            )))
        }
    };
    Ok(NewUser {
        name,
        role,
        merchant,
        merchant_codes,
    })
}

/// A new API key and its hash (argon2, on a blocking thread: it takes ~25 ms of CPU).
async fn new_key() -> Result<(ApiKey, String), AppError> {
    let key = ApiKey::generate();
    let plain = ApiKey::from_plain(key.expose());
    let hash = tokio::task::spawn_blocking(move || plain.hash())
        .await
        .map_err(AppError::KeyHashing)?;
    Ok((key, hash))
}

/// `user.create` / `hookd user add`: the user and its key, shown this once. The merchant
/// (and a publisher's merchants) must exist (111).
pub async fn user_create(store: &dyn Store, req: UserRequest) -> Result<(UserRecord, ApiKey), AppError> {
    let new = check_user(req)?;
    let merchant = match &new.merchant {
        Some(code) => Some(
            store
                .merchant_by_code(code.as_str())
                .await?
                .ok_or_else(|| no_merchant("merchant_code", code.as_str()))?,
        ),
        None => None,
    };
    for code in &new.merchant_codes {
        if store.merchant_by_code(code).await?.is_none() {
            return Err(no_merchant("merchant_codes", code));
        }
    }
    let (key, hash) = new_key().await?;
    match store
        .user_create_scoped(&new.name, new.role, merchant, &new.merchant_codes, &hash)
        .await
    {
        Err(StoreError::Conflict(_)) => Err(AppError::Exists(format!(
            "A user named '{}' already exists.",
            new.name.as_str()
        ))),
        Ok(user) => Ok((user, key)),
        Err(e) => Err(e.into()),
    }
}

fn no_merchant(field: &str, code: &str) -> AppError {
    AppError::NoSuchMerchant(format!("{field}: there is no merchant '{code}'."))
}

fn no_user(name: &str) -> AppError {
    AppError::NoSuchUser(format!("There is no user named '{name}'."))
}

fn check_name(name: &str) -> Result<(), AppError> {
    UserName::parse(name)
        .map(|_| ())
        .map_err(|e| invalid(format!("username: {e}")))
}

/// `user.rotate_key` / `hookd user rotate-key`: a new key; the old one and every session of
/// the user stop at once.
pub async fn user_rotate_key(store: &dyn Store, name: &str) -> Result<ApiKey, AppError> {
    check_name(name)?;
    let (key, hash) = new_key().await?;
    if !store.user_rotate_key(name, &hash).await? {
        return Err(no_user(name));
    }
    Ok(key)
}

/// `user.delete`: the user and its sessions go. `by` is the admin asking (None: the CLI,
/// which is trusted): nobody deletes themselves through the API, and the last admin is
/// never deleted, so the API cannot lock everybody out.
pub async fn user_delete(store: &dyn Store, name: &str, by: Option<&UserRecord>) -> Result<(), AppError> {
    check_name(name)?;
    if by.is_some_and(|u| u.name == name) {
        return Err(invalid(
            "username: you cannot delete yourself (another admin can, or `hookd user remove`)".into(),
        ));
    }
    let Some(user) = store.user_by_name(name).await? else {
        return Err(no_user(name));
    };
    if user.role == Role::Admin && by.is_some() {
        let admins = store
            .user_list()
            .await?
            .iter()
            .filter(|u| u.role == Role::Admin)
            .count();
        if admins <= 1 {
            return Err(invalid(format!("username: '{name}' is the last admin")));
        }
    }
    if !store.user_remove(name).await? {
        return Err(no_user(name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, role: &str, code: Option<&str>, codes: Option<Vec<&str>>) -> UserRequest {
        UserRequest {
            username: name.into(),
            role: role.into(),
            merchant_code: code.map(Into::into),
            merchant_codes: codes.map(|c| c.into_iter().map(Into::into).collect()),
        }
    }

    fn refused(r: UserRequest) -> String {
        match check_user(r) {
            Err(AppError::InvalidData(d)) => d,
            other => panic!("expected 101, got {:?}", other.map(|u| u.name)),
        }
    }

    #[test]
    fn each_role_takes_only_its_own_merchant_fields() {
        assert!(check_user(req("a", "admin", None, None)).is_ok());
        assert!(check_user(req("m", "merchant", Some("shop"), None)).is_ok());
        assert!(check_user(req("p", "publisher", None, None)).is_ok());
        assert!(check_user(req("p", "publisher", None, Some(vec!["a", "b"]))).is_ok());
        assert!(refused(req("m", "merchant", None, None)).starts_with("merchant_code:"));
        assert!(refused(req("p", "publisher", Some("shop"), None)).starts_with("merchant_code:"));
        assert!(refused(req("a", "admin", None, Some(vec![]))).starts_with("merchant_codes:"));
        assert!(refused(req("a", "root", None, None)).starts_with("role:"));
        assert!(refused(req("a b", "admin", None, None)).starts_with("username:"));
    }

    #[test]
    fn a_publishers_merchants_are_bounded_valid_and_distinct() {
        let many: Vec<String> = (0..=MAX_MERCHANT_CODES).map(|i| format!("m{i}")).collect();
        let r = UserRequest {
            merchant_codes: Some(many),
            ..req("p", "publisher", None, None)
        };
        assert!(refused(r).contains("at most 100"));
        assert!(refused(req("p", "publisher", None, Some(vec!["a", "a"]))).contains("twice"));
        assert!(refused(req("p", "publisher", None, Some(vec!["a,b"]))).starts_with("merchant_codes:"));
    }
}

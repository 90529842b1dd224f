//! The Sentinel workspace, named by its ARM resource id.

/// The Sentinel workspace, from its ARM resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl Workspace {
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{w}`
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }

    /// The resource id lower-cased: ARM ids compare case-insensitively, so two spellings of one
    /// workspace are one workspace (and one key).
    pub fn key(&self) -> String {
        self.resource_id().to_ascii_lowercase()
    }

    /// Whether `other` names the same workspace (resource ids compare case-insensitively).
    pub fn same_as(&self, other: &Workspace) -> bool {
        self.key() == other.key()
    }

    pub fn parse(id: &str) -> Result<Self, String> {
        let parts: Vec<&str> = id.trim().trim_matches('/').split('/').collect();
        let ok = parts.len() == 8
            && parts[0].eq_ignore_ascii_case("subscriptions")
            && parts[2].eq_ignore_ascii_case("resourceGroups")
            && parts[4].eq_ignore_ascii_case("providers")
            && parts[5].eq_ignore_ascii_case("Microsoft.OperationalInsights")
            && parts[6].eq_ignore_ascii_case("workspaces");
        if !ok {
            return Err(format!(
                "'{id}' is not a workspace resource id; expected /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>"
            ));
        }
        let name = parts[7];
        let valid_name = (1..=90).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !valid_name {
            return Err(format!("workspace name '{name}' must be 1-90 letters, digits or '-'"));
        }
        Ok(Self { subscription_id: parts[1].into(), resource_group: parts[3].into(), name: name.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_workspace_in_two_spellings_is_one_key() {
        let a = Workspace::parse(
            "/subscriptions/S/resourceGroups/RG/providers/Microsoft.OperationalInsights/workspaces/Soc",
        )
        .unwrap();
        let b = Workspace::parse(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/soc",
        )
        .unwrap();
        assert!(a.same_as(&b));
        assert_eq!(a.key(), b.key());
        assert_eq!(
            a.key(),
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/soc"
        );
        let c = Workspace { name: "soc-emea".into(), ..a.clone() };
        assert!(!a.same_as(&c));
    }
}

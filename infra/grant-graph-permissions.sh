#!/usr/bin/env bash
# Grants a service principal of this tenant the Microsoft Graph application permissions xdrsync's
# features need. ARM/Bicep cannot grant Graph app roles; run this as a Global Administrator or
# Privileged Role Administrator (operations.md, "Deploy"):
#   ./grant-graph-permissions.sh [--hunting] <principal object id>
# The principal is the deployment's `principalId` output (graphCredential managed-identity), or the
# service principal of the app registration in its home tenant (federated or secret; customer
# tenants grant through admin consent instead: docs/identity.md).
# Incidents and alerts always; ThreatHunting.Read.All with --hunting (huntingTables given).
# Idempotent: a permission the principal already holds is reported and left alone (Graph answers
# a second identical app-role assignment with an error), so a rerun only adds what is missing.
set -euo pipefail
hunting=false
if [[ "${1:-}" == "--hunting" ]]; then hunting=true; shift; fi
principal="${1:?usage: $0 [--hunting] <principal object id>}"
graph_app=00000003-0000-0000-c000-000000000000
graph_sp=$(az ad sp show --id "$graph_app" --query id -o tsv)
roles=(SecurityIncident.ReadWrite.All SecurityAlert.Read.All User.Read.All)
if $hunting; then roles+=(ThreatHunting.Read.All); fi
held=$(az rest --method GET \
  --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$principal/appRoleAssignments" \
  --query "value[?resourceId=='$graph_sp'].appRoleId" -o tsv)
for role in "${roles[@]}"; do
  role_id=$(az ad sp show --id "$graph_app" --query "appRoles[?value=='$role'].id" -o tsv)
  if grep -qx "$role_id" <<<"$held"; then
    echo "already granted $role"
    continue
  fi
  az rest --method POST \
    --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$principal/appRoleAssignments" \
    --body "{\"principalId\":\"$principal\",\"resourceId\":\"$graph_sp\",\"appRoleId\":\"$role_id\"}" >/dev/null
  echo "granted $role"
done

#!/usr/bin/env bash
# Grants xdrsync's managed identity the Microsoft Graph application permissions it needs.
# ARM/Bicep cannot grant Graph app roles; run this once as a Global Administrator or
# Privileged Role Administrator:  ./grant-graph-permissions.sh <principalId from the deployment>
set -euo pipefail
principal="${1:?usage: $0 <managed identity principal id>}"
graph_sp=$(az ad sp show --id 00000003-0000-0000-c000-000000000000 --query id -o tsv)
for role in SecurityIncident.ReadWrite.All SecurityAlert.Read.All User.Read.All; do
  role_id=$(az ad sp show --id 00000003-0000-0000-c000-000000000000 --query "appRoles[?value=='$role'].id" -o tsv)
  az rest --method POST \
    --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$principal/appRoleAssignments" \
    --body "{\"principalId\":\"$principal\",\"resourceId\":\"$graph_sp\",\"appRoleId\":\"$role_id\"}" >/dev/null
  echo "granted $role"
done

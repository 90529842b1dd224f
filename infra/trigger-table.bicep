// The native alerts' trigger table (docs/native-alerts.md), in the workspace's resource group:
// the small rows the analytics rules (alert-rule.bicep) read, columns from
// alert-trigger-columns.json, which the DCR's stream declares too (ingestion.bicep). Kept
// apart from workspace.bicep so the rules can wait for it (a rule over a missing table is refused).

param workspaceName string
param tableName string

@description('Columns of the table (alert-trigger-columns.json).')
param columns array

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: tableName
  properties: {
    schema: {
      name: tableName
      columns: columns
    }
  }
}

// The near-real-time analytics rules that turn every row of the trigger table into a Microsoft
// Sentinel alert (name, description, severity, tactics and link from the row; entities from the
// flattened entity columns; the Defender ids and the TriggerId as custom details), without
// incidents: xdrsync relates each alert to its mirror (docs/native-alerts.md). `ruleCount` rules,
// rule i reading the rows of shard i (XDRSYNC_ALERT_RULES must say the same number): rows are
// paced per rule below the NRT run's 29 single alerts. Deployed in the workspace's resource group
// with Log Analytics Reader for xdrsync's identity (the query API finds the alerts).
//
// Documented (azure-rest-api-specs securityinsights, bicep types): kind 'NRT' exists in the preview
// api-versions only (the stable 2025-09-01 lists Fusion, MicrosoftSecurityIncidentCreation and
// Scheduled), hence 2025-07-01-preview; alertDetailsOverride (alertDisplayNameFormat,
// alertDescriptionFormat, alertSeverityColumnName, alertTacticsColumnName, alertDynamicProperties),
// entityMappings, customDetails, eventGroupingSettings, incidentConfiguration.createIncident.
// Documented (Learn, “Map data fields to entities”): at most 10 mappings of 3 identifiers; 500
// entities per alert. Documented (“Customize alert details”): an empty or invalid severity or tactic
// falls back to the rule's own. Assumed: a Defender alert category (e.g. InitialAccess) is accepted as
// a tactic name where it matches one; others fall back to no tactic.

@description('Name of the Sentinel (Log Analytics) workspace.')
param workspaceName string

@description('The trigger table (XdrsyncAlertTriggers_CL).')
param tableName string

@description('How many rules (shards), 1 to 40: XDRSYNC_ALERT_RULES. 40 leaves 10 of the workspace\'s 50 NRT rules.')
@minValue(1)
@maxValue(40)
param ruleCount int = 10

@description('Object ids of the principals xdrsync calls Azure as (each gets Log Analytics Reader).')
param principalIds array

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

// The rules' definition (kind, query, mappings, details; `{table}` and `{shard}` placeholders)
// is the template alert-rule.json, which `xdrsync connect` reads too: it creates the rules when
// this deployment could not (the table appeared late) and repairs what xdrsync owns of them
// (src/ops/connect_rule.rs). Rule i is named shardNames[i], fixed (not a guid() of the workspace
// id) so both find the same rules.
var definition = loadJsonContent('alert-rule.json')

resource rules 'Microsoft.SecurityInsights/alertRules@2025-07-01-preview' = [for shard in range(0, ruleCount): {
  scope: workspace
  name: definition.shardNames[shard]
  kind: 'NRT' // alert-rule.json's kind (a literal: Bicep types the properties by it)
  properties: union(definition.properties, {
    displayName: replace(definition.properties.displayName, '{shard}', string(shard))
    description: replace(definition.properties.description, '{shard}', string(shard))
    query: replace(replace(definition.properties.query, '{table}', tableName), '{shard}', string(shard))
  })
}]

var logAnalyticsReaderRoleId = '73c42c96-874c-492b-b04d-ab87d138a893' // Log Analytics Reader

// Log Analytics Reader on the workspace: lets the identity query SecurityAlert.
resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(workspace.id, principalId, 'log-analytics-reader')
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReaderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

output workspaceId string = workspace.properties.customerId

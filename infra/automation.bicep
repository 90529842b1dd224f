// Sentinel automation rules (deployed in the workspace's resource group) that run the xdrsync
// playbook for every mirror created or updated. An automation rule has one trigger, so there are
// two rules:
// - "updated": an analyst's edit reaches Defender in about a second. Sentinel fires it for updates
//   made through the API too, xdrsync's own included; the webhook answers those "unchanged" (an
//   echo of a version it wrote) without syncing.
// - "created": xdrsync creates every mirror, so this mostly answers "unchanged" as well; it exists
//   because changes made by automation rules at creation (an owner assigned, a tag added) fire no
//   "updated" rule, and this rule runs after them (order below) and sees them.
// Condition: the incident carries the label xdrsync puts on every mirror ("Microsoft Defender
// XDR"), so no playbook run is spent on incidents xdrsync does not mirror (they would get a 404).
// Order: rules run in ascending `order`; xdrsync's default is 1000 (last), so it sees what every
// other rule changed. A rule that closes or suppresses incidents still lets later rules run.

param workspaceName string
param playbookResourceId string

@description('Object id of the playbook (Logic App) identity, which its Microsoft Sentinel connection authenticates as.')
param playbookPrincipalId string

@minValue(1)
@maxValue(1000)
param order int

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

var mirrorsOnly = [
  {
    conditionType: 'Property'
    conditionProperties: {
      propertyName: 'IncidentLabel'
      operator: 'Contains'
      propertyValues: ['Microsoft Defender XDR']
    }
  }
]

var runPlaybook = [
  {
    order: 1
    actionType: 'RunPlaybook'
    actionConfiguration: {
      logicAppResourceId: playbookResourceId
      tenantId: tenant().tenantId
    }
  }
]

resource onCreated 'Microsoft.SecurityInsights/automationRules@2024-03-01' = {
  scope: workspace
  name: guid(workspace.id, 'xdrsync-created')
  properties: {
    displayName: 'xdrsync: send created mirrors to the webhook'
    order: order
    triggeringLogic: {
      isEnabled: true
      triggersOn: 'Incidents'
      triggersWhen: 'Created'
      conditions: mirrorsOnly
    }
    actions: runPlaybook
  }
}

resource onUpdated 'Microsoft.SecurityInsights/automationRules@2024-03-01' = {
  scope: workspace
  name: guid(workspace.id, 'xdrsync-updated')
  properties: {
    displayName: 'xdrsync: send updated mirrors to the webhook'
    order: order
    triggeringLogic: {
      isEnabled: true
      triggersOn: 'Incidents'
      triggersWhen: 'Updated'
      conditions: mirrorsOnly
    }
    actions: runPlaybook
  }
}

var sentinelReaderRoleId = '8d289c81-5878-46d4-8554-54e1e3d8b5cb' // Microsoft Sentinel Reader

// Microsoft Sentinel Reader for the playbook identity: its Microsoft Sentinel connection (the
// incident trigger) authenticates as that identity. Whether the trigger alone needs a role is not
// documented; Reader is the least one, and the playbook changes nothing in Sentinel.
resource playbookReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, playbookPrincipalId, sentinelReaderRoleId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sentinelReaderRoleId)
    principalId: playbookPrincipalId
    principalType: 'ServicePrincipal'
  }
}

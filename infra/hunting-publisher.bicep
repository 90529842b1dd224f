// Monitoring Metrics Publisher (upload) and Monitoring Reader (`xdrsync check` finds the rule by
// its immutable id) for one principal on each hunting data collection rule (hunting.bicep): a
// separate module because a role assignment loops over one collection.

@description('Names of the hunting DCRs, in this resource group.')
param dcrNames array

@description('Object id of a principal xdrsync calls Azure as.')
param principalId string

var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
var monitoringReaderRoleId = '43d0d8ad-25c7-4714-9337-8ba259a9fe05' // Monitoring Reader

resource dcrs 'Microsoft.Insights/dataCollectionRules@2023-03-11' existing = [for name in dcrNames: {
  name: name
}]

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in dcrNames: {
  name: guid(dcrs[i].id, principalId, 'publisher')
  scope: dcrs[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in dcrNames: {
  name: guid(dcrs[i].id, principalId, 'reader')
  scope: dcrs[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReaderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

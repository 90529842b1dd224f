// Data roles on the storage account for xdrsync's principals (the app's user-assigned identity and,
// when given, the principal of a secret or certificate): Blob Data Owner (the host's keys, leases,
// timer state and, on Flex Consumption, the deployment package), Queue Data Contributor (the work
// queue and its poison queue), Table Data Contributor (xdrsync's state).

param storageName string

@description('Object ids of the principals xdrsync calls Azure as.')
param principalIds array

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

var blobOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var queueContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
var tableContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(storage.id, principalId, blobOwnerRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobOwnerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(storage.id, principalId, queueContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {
  name: guid(storage.id, principalId, tableContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

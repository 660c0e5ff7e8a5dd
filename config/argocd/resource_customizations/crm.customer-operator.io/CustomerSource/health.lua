-- Health of a CustomerSource, from its spec.suspend, observedGeneration and the
-- conditions the controller sets (Ready, and kstatus' Reconciling and Stalled).
-- Runs with Lua's base, table and package libraries only, as argocd-cm checks do.
local hs = {}
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "suspended: webhooks are answered 503 until spec.suspend is false"
  return hs
end
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the controller"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the controller to observe generation " .. generation
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end
local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message
  return hs
end
local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
hs.message = "waiting for the Ready condition"
return hs

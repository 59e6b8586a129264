// The native add-ons that ship no types; what Spore uses of them is typed where it is used.
declare module "sockopt" {
  const addon: unknown
  export default addon
}

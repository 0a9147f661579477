package qr

// ObjectName returns the EMVCo name of a tag inside the template parent
// ("" for the top level), e.g. ObjectName("", "59") is "Merchant Name" and
// ObjectName("62", "05") is "Reference Label"; "" when the specification
// gives the tag no name. It is for people reading decoded payloads.
func ObjectName(parent, tag string) string {
	p, t := -1, tagNum(tag)
	if parent != "" {
		if p = tagNum(parent); p < 0 {
			return ""
		}
	}
	switch {
	case t < 0:
		return ""
	case p == -1:
		return topNames[t]
	case p >= firstAccountTag && p <= lastAccountTag || p >= 80:
		if t == 0 {
			return "Globally Unique Identifier"
		}
		return "Payment Network Specific"
	case p == 62:
		if t >= 50 {
			return "Payment System Specific Template"
		}
		return additionalNames[t]
	case p == 64:
		return languageNames[t]
	}
	return ""
}

var topNames = func() (t [100]string) {
	t[0] = "Payload Format Indicator"
	t[1] = "Point of Initiation Method"
	for i := 2; i <= lastAccountTag; i++ {
		t[i] = "Merchant Account Information"
	}
	t[52] = "Merchant Category Code"
	t[53] = "Transaction Currency"
	t[54] = "Transaction Amount"
	t[55] = "Tip or Convenience Indicator"
	t[56] = "Value of Convenience Fee Fixed"
	t[57] = "Value of Convenience Fee Percentage"
	t[58] = "Country Code"
	t[59] = "Merchant Name"
	t[60] = "Merchant City"
	t[61] = "Postal Code"
	t[62] = "Additional Data Field Template"
	t[63] = "CRC"
	t[64] = "Merchant Information - Language Template"
	for i := 65; i <= 79; i++ {
		t[i] = "RFU for EMVCo"
	}
	for i := 80; i <= 99; i++ {
		t[i] = "Unreserved Template"
	}
	return t
}()

var additionalNames = [100]string{
	1:  "Bill Number",
	2:  "Mobile Number",
	3:  "Store Label",
	4:  "Loyalty Number",
	5:  "Reference Label",
	6:  "Customer Label",
	7:  "Terminal Label",
	8:  "Purpose of Transaction",
	9:  "Additional Consumer Data Request",
	10: "Merchant Tax ID",
	11: "Merchant Channel",
}

var languageNames = [100]string{
	0: "Language Preference",
	1: "Merchant Name - Alternate Language",
	2: "Merchant City - Alternate Language",
}

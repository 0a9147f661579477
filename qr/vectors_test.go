package qr_test

// Public payloads, each checked by this package's CRC (and by an
// independent bit-by-bit CRC-16/CCITT-FALSE) before being added. Only the
// payload strings are taken from the sources; no code is.
const (
	// electrumMinimal is the example payload of the Electrum QR Payment
	// Service Interface (its QR data section).
	electrumMinimal = "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941"
	// electrumTwoTemplates is the interface's example with a second
	// provider's template (za.co.mp) in tag 27.
	electrumTwoTemplates = "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c294127260008za.co.mp01105169175130"
	// electrumTranID is the tranId both Electrum examples carry.
	electrumTranID = "f82d7f64feea4f2ab24da94aaf5c2941"

	// pixBCB is the static Pix example of Banco Central do Brasil's
	// "Manual do BR Code" (no point of initiation, CRC 1D3D).
	pixBCB = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"

	// emvcoSample is the sample payload of the EMVCo merchant-presented QR
	// specification, with multi-byte characters in the language template
	// 64 (最佳运输, 北京) and an unreserved template 91; as used in the test
	// suites of NascentSecureTech/pix-qrcode-utils
	// (packages/emv-merchant-qrcode/test/qrcode-emv.test.ts, "HelloWorld")
	// and mercari/go-emv-code (mpm/jpqr/jpqr_test.go).
	emvcoSample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"

	// emvcoSampleReordered is the same objects in another order (64 just
	// before the CRC), from mercari/go-emv-code mpm/emv_test.go
	// (emvSamplePayload).
	emvcoSampleReordered = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115303156540523.725502015802CN5914BEST TRANSPORT6007BEIJING6233030412340603***0708A60086670902ME64200002ZH0104最佳运输0202北京6304CDE7"

	// jpqrSample is a static JPQR payload with a Japanese merchant name in
	// the language template (メルペイ カフェ) and postal code 61, from
	// mercari/go-emv-code mpm/jpqr/jpqr_test.go.
	jpqrSample = "0002016003xxx01021129300012D156000000000510A93FO3230Q31280012D1560000000103081234567826680019jp.or.paymentsjapan01130000000000001020400010306000001040600000153033925903xxx64180002JA0108メルペイ カフェ520441115802JP610710661436304DEE9"

	// pixItau is a static Pix code with a nested payment system specific
	// template 62.50 (BR.GOV.BCB.BRCODE), from
	// NascentSecureTech/pix-qrcode-utils
	// packages/emv-merchant-qrcode/test/qrcode-emv.test.ts ("itau").
	pixItau = "00020101021126590014BR.GOV.BCB.PIX0111168021888300222Teste QR Code Estatico5204000053039865802BR5925PMD Marcws Odriano Mi Sil6009SAO PAULO62600522jTdCUfBqTfOAFjuB9GnnLQ50300017BR.GOV.BCB.BRCODE01051.0.063048E06"

	// pixBanrisulBadCRC is a Pix code whose CRC is wrong (DAA6, the
	// payload's is DAA5), from the same file ("Erro:CRC").
	pixBanrisulBadCRC = "00020101021226960014br.gov.bcb.pix2574ww4.banrisul.com.br/bqq/api/pix/qrcode/nightly/hiPxAvkKJJhHdJ8Qp2P4aU3Yb2g5204000053039865802BR5908Banrisul6012Porto Alegre61089001026062070503***6304DAA6"

	// pixDynamic is a dynamic Pix code with an amount, from the README of
	// rprata/pixcode. Its objects are in the order Encode writes them, so
	// Encode reproduces it byte for byte.
	pixDynamic = "00020101021226720014br.gov.bcb.pix2550bx.com.br/pix/8b3da2f3-9a41-40d1-a91a-bd93113bd4415204000053039865406123.455802BR5913Fulano de Tal6008BRASILIA62190515RP12345678-2019630445C8"

	// promptPayAmount is a Thai PromptPay code for THB 4.22, from
	// dtinth/promptpay-qr index.test.js ("Amount").
	promptPayAmount = "00020101021229370016A000000677010111011300660000000005802TH530376454044.226304E469"

	// promptPayPhone is a static PromptPay code without an amount, from
	// the same file ("Local phone number").
	promptPayPhone = "00020101021129370016A000000677010111011300668012345675802TH530376463046197"
)
